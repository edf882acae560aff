#include "core/glob.h"

#include <string.h>

/*
 * Greedy matching with one remembered star.  When a literal fails after a
 * star, only the most recent star is retried one byte further on: an
 * earlier star can never need to absorb more, because anything it could
 * take the later star can take too.  That keeps the worst case at
 * O(plen * slen) instead of exponential.
 */
bool
tr_glob_match(const char *p, size_t plen, const char *s, size_t slen)
{
    size_t pi = 0, si = 0;
    size_t star_p = (size_t)-1; /* pattern index just after the last star */
    size_t star_s = 0;          /* subject index that star is retried at */

    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            star_p = ++pi;
            star_s = si;
            continue;
        }
        if (pi < plen) {
            size_t step = 1;
            char want = p[pi];
            bool any = false;

            if (want == '?') {
                any = true;
            } else if (want == '\\' && pi + 1 < plen) {
                want = p[pi + 1];
                step = 2;
            }
            if (any || want == s[si]) {
                pi += step;
                si++;
                continue;
            }
        }
        if (star_p == (size_t)-1)
            return false;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < plen && p[pi] == '*')
        pi++;
    return pi == plen;
}

bool
tr_glob_match_cstr(const char *pattern, const char *subject)
{
    return tr_glob_match(pattern, strlen(pattern), subject, strlen(subject));
}
