#include "core/rfc3339.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (March-based year
 * so the leap day comes last). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool
is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int64_t y, int m)
{
    static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                              31 };

    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* Exactly n digits at *p; advances. */
static bool
digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool
expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

static int
parse_rfc3339(const char *s, int64_t *out_ms)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0;
    int64_t frac_ms = 0, off_s = 0, days;

    if (!digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) ||
        !expect(&p, '-') || !digits(&p, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return -1;
    if (*p != '\0') {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return -1;
        p++;
        if (!digits(&p, 2, &h) || !expect(&p, ':') ||
            !digits(&p, 2, &mi) || !expect(&p, ':') ||
            !digits(&p, 2, &sec))
            return -1;
        /* 60 is a leap second: it lands on the next second's start. */
        if (h > 23 || mi > 59 || sec > 60)
            return -1;
        if (*p == '.') {
            int64_t scale = 100;
            bool any = false;

            for (p++; isdigit((unsigned char)*p); p++, any = true) {
                frac_ms += (*p - '0') * scale;
                scale /= 10;
            }
            if (!any)
                return -1;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1;

            p++;
            if (!digits(&p, 2, &oh) || !expect(&p, ':') ||
                !digits(&p, 2, &om) || oh > 23 || om > 59)
                return -1;
            off_s = sign * (oh * 3600 + om * 60);
        } else {
            return -1; /* RFC 3339 requires the offset */
        }
        if (*p != '\0')
            return -1;
    }
    days = days_from_civil(y, mo, d);
    *out_ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - off_s) * 1000 +
              frac_ms;
    return 0;
}

static int
parse_relative(const char *s, int64_t now_ms, int64_t *out_ms)
{
    int64_t n = 0, unit;
    const char *p = s;

    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        n = n * 10 + (*p - '0');
        if (n > 100000000)
            return -1; /* about 3 years in seconds; far beyond any use */
    }
    switch (*p) {
    case 's': unit = 1000; break;
    case 'm': unit = 60 * 1000; break;
    case 'h': unit = 3600 * 1000; break;
    case 'd': unit = 86400 * 1000; break;
    case 'w': unit = 7 * 86400 * 1000; break;
    default: return -1;
    }
    if (p[1] != '\0')
        return -1;
    *out_ms = now_ms - n * unit;
    return 0;
}

int
tr_time_arg_parse(const char *s, int64_t now_ms, int64_t *out_ms)
{
    if (!s || !*s)
        return -1;
    if (!strcmp(s, "now")) {
        *out_ms = now_ms;
        return 0;
    }
    if (strlen(s) >= 10 && s[4] == '-')
        return parse_rfc3339(s, out_ms);
    return parse_relative(s, now_ms, out_ms);
}

int
tr_rfc3339_format(int64_t ms, char *buf, size_t len)
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int64_t msec = ms - secs * 1000;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t rem = secs - days * 86400, y;
    int m, d, n;

    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return -1;
    n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, m,
                 d, (int)(rem / 3600), (int)(rem / 60 % 60),
                 (int)(rem % 60), (int)msec);
    return n > 0 && (size_t)n < len ? 0 : -1;
}
