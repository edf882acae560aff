/*
 * Entity tags (src/core/etag.c): If-Match / If-None-Match list parsing
 * per RFC 9110 (the "*" rule, W/, empty elements, what is refused), the
 * two comparison functions against RFC 9110 §8.8.3.2's example table, and
 * synthesized ETags against digests computed independently (Python
 * hashlib + base64url over the layout documented in etag.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/etag.h"

#define S(x) (x), strlen(x)

static tr_etag_list_status
parse1(tr_etag_list *l, const char *v)
{
    tr_etag_list_init(l);
    return tr_etag_list_add(l, S(v));
}

static void
assert_tag(const tr_etag *t, const char *opaque, bool weak)
{
    assert_int_equal(t->len, strlen(opaque));
    assert_memory_equal(t->opaque, opaque, t->len);
    assert_int_equal(t->weak, weak);
}

/* ------------------------------------------------------------ lists */

static void
list_single_strong_tag(void **state)
{
    tr_etag_list l;
    assert_int_equal(parse1(&l, "\"xyzzy\""), TR_ETAG_LIST_OK);
    assert_true(l.present);
    assert_false(l.any);
    assert_int_equal(l.n, 1);
    assert_tag(&l.tags[0], "\"xyzzy\"", false);
}

static void
list_ows_and_empty_elements_accepted(void **state)
{
    tr_etag_list l;
    assert_int_equal(parse1(&l, " \t\"a\" , ,W/\"b\",\t\"c\" ,"),
                     TR_ETAG_LIST_OK);
    assert_int_equal(l.n, 3);
    assert_tag(&l.tags[0], "\"a\"", false);
    assert_tag(&l.tags[1], "\"b\"", true);
    assert_tag(&l.tags[2], "\"c\"", false);
}

static void
list_star_alone_is_any(void **state)
{
    tr_etag_list l;
    assert_int_equal(parse1(&l, "  *  "), TR_ETAG_LIST_OK);
    assert_true(l.any);
    assert_int_equal(l.n, 0);
    /* A second "*" line is still "*". */
    assert_int_equal(tr_etag_list_add(&l, S("*")), TR_ETAG_LIST_OK);
    assert_true(l.any);
}

static void
list_star_mixed_with_tags_is_invalid(void **state)
{
    tr_etag_list l;
    assert_int_equal(parse1(&l, "*, \"a\""), TR_ETAG_LIST_INVALID);
    assert_int_equal(parse1(&l, "\"a\", *"), TR_ETAG_LIST_INVALID);
    assert_int_equal(parse1(&l, "**"), TR_ETAG_LIST_INVALID);
    /* Across field lines, in either order. */
    assert_int_equal(parse1(&l, "*"), TR_ETAG_LIST_OK);
    assert_int_equal(tr_etag_list_add(&l, S("\"a\"")),
                     TR_ETAG_LIST_INVALID);
    assert_false(l.any);
    assert_int_equal(parse1(&l, "\"a\""), TR_ETAG_LIST_OK);
    assert_int_equal(tr_etag_list_add(&l, S("*")), TR_ETAG_LIST_INVALID);
    assert_int_equal(l.n, 0);
}

static void
list_malformed_tags_are_invalid(void **state)
{
    static const char *const bad[] = {
        "abc",            /* unquoted */
        "w/\"a\"",        /* W is case-sensitive */
        "W/ \"a\"",       /* nothing between W/ and the quote */
        "\"abc",          /* no closing quote */
        "\"a b\"",        /* SP is not etagc */
        "\"a\"b\"",       /* junk after the tag */
        "\"a\" \"b\"",    /* a missing comma */
        "W/",
        "\"\x7f\"",       /* DEL */
        "\"a\";q=1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tr_etag_list l;
        if (parse1(&l, bad[i]) != TR_ETAG_LIST_INVALID)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(l.n, 0);
    }
}

static void
list_etagc_edges_accepted(void **state)
{
    tr_etag_list l;
    /* "" (empty opaque), a backslash, obs-text, "!" and "~". */
    assert_int_equal(parse1(&l, "\"\", \"a\\\\\", \"\xc3\xa9\", \"!~\""),
                     TR_ETAG_LIST_OK);
    assert_int_equal(l.n, 4);
    assert_tag(&l.tags[0], "\"\"", false);
    assert_tag(&l.tags[1], "\"a\\\\\"", false);
}

static void
list_field_lines_are_joined(void **state)
{
    tr_etag_list l;
    assert_int_equal(parse1(&l, "\"a\""), TR_ETAG_LIST_OK);
    assert_int_equal(tr_etag_list_add(&l, S("W/\"b\", \"c\"")),
                     TR_ETAG_LIST_OK);
    assert_int_equal(l.n, 3);
    assert_tag(&l.tags[2], "\"c\"", false);
}

static void
list_empty_value_is_present_and_matches_nothing(void **state)
{
    tr_etag_list l;
    tr_etag cur;
    assert_int_equal(parse1(&l, "   "), TR_ETAG_LIST_OK);
    assert_true(l.present);
    assert_false(l.any);
    assert_int_equal(l.n, 0);
    assert_true(tr_etag_parse(S("\"a\""), &cur));
    assert_false(tr_etag_list_match_strong(&l, &cur));
    assert_false(tr_etag_list_match_weak(&l, &cur));
}

static void
list_too_many_tags_refused(void **state)
{
    char v[TR_ETAG_MAX_TAGS * 8 + 16];
    size_t n = 0;
    tr_etag_list l;

    for (int i = 0; i < TR_ETAG_MAX_TAGS; i++)
        n += (size_t)snprintf(v + n, sizeof(v) - n, "\"t%d\",", i);
    assert_int_equal(parse1(&l, v), TR_ETAG_LIST_OK);
    assert_int_equal(l.n, TR_ETAG_MAX_TAGS);
    snprintf(v + n, sizeof(v) - n, "\"one-more\"");
    assert_int_equal(parse1(&l, v), TR_ETAG_LIST_TOO_MANY);
    assert_int_equal(l.n, 0);
}

static void
list_error_is_sticky(void **state)
{
    tr_etag_list l;
    assert_int_equal(parse1(&l, "nope"), TR_ETAG_LIST_INVALID);
    assert_int_equal(tr_etag_list_add(&l, S("\"a\"")),
                     TR_ETAG_LIST_INVALID);
    assert_int_equal(l.n, 0);
    tr_etag cur;
    assert_true(tr_etag_parse(S("\"a\""), &cur));
    assert_false(tr_etag_list_match_strong(&l, &cur));
}

/* ------------------------------------------------------ comparisons */

static void
single_tag_parse(void **state)
{
    tr_etag t;
    assert_true(tr_etag_parse(S(" W/\"e9-S/NKv7\" "), &t));
    assert_tag(&t, "\"e9-S/NKv7\"", true);
    assert_false(tr_etag_parse(S("\"a\", \"b\""), &t));
    assert_false(tr_etag_parse(S("*"), &t));
    assert_false(tr_etag_parse(S(""), &t));
}

/* RFC 9110 §8.8.3.2, the example table. */
static void
comparison_table(void **state)
{
    static const struct {
        const char *a, *b;
        bool strong, weak;
    } rows[] = {
        { "W/\"1\"", "W/\"1\"", false, true },
        { "W/\"1\"", "W/\"2\"", false, false },
        { "W/\"1\"", "\"1\"", false, true },
        { "\"1\"", "\"1\"", true, true },
        { "\"1\"", "\"10\"", false, false },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        tr_etag a, b;
        assert_true(tr_etag_parse(S(rows[i].a), &a));
        assert_true(tr_etag_parse(S(rows[i].b), &b));
        assert_int_equal(tr_etag_strong_eq(&a, &b), rows[i].strong);
        assert_int_equal(tr_etag_strong_eq(&b, &a), rows[i].strong);
        assert_int_equal(tr_etag_weak_eq(&a, &b), rows[i].weak);
    }
}

static void
list_match_strong_ignores_weak_members(void **state)
{
    tr_etag_list l;
    tr_etag cur;
    assert_int_equal(parse1(&l, "W/\"v2\", \"v1\""), TR_ETAG_LIST_OK);
    assert_true(tr_etag_parse(S("\"v2\""), &cur));
    assert_false(tr_etag_list_match_strong(&l, &cur));
    assert_true(tr_etag_list_match_weak(&l, &cur));
    assert_true(tr_etag_parse(S("\"v1\""), &cur));
    assert_true(tr_etag_list_match_strong(&l, &cur));
}

/* ------------------------------------------------------- synthesized */

static const char *
synth(const char *body, bool canonical, char *const *ignore, size_t n_ign,
      const char *coding, int *mode)
{
    static char out[TR_ETAG_SYNTH_LEN + 1];
    tr_etag_synth_opts o = {
        .canonical_json = canonical,
        .ignore_fields = ignore,
        .n_ignore = n_ign,
        .content_coding = coding,
        .content_coding_len = coding ? strlen(coding) : 0,
    };
    *mode = tr_etag_synthesize(body, strlen(body), &o, out);
    return out;
}

static void
keep(char dst[TR_ETAG_SYNTH_LEN + 1], const char *src)
{
    memcpy(dst, src, TR_ETAG_SYNTH_LEN + 1);
}

/* Expected values: sha256(b"treaty-etag/1\0" + mode + coding + b"\0" +
 * bytes), base64url without padding, quoted. */
static void
synth_raw_matches_independent_digest(void **state)
{
    int mode;
    const char *t = synth("{\"b\": 1, \"a\": 2}", false, NULL, 0, NULL,
                          &mode);
    assert_int_equal(mode, 'R');
    assert_string_equal(t, "\"S1EifCxRLnr3EAzCA7ECGsmynFhUWp7Du3M4xOiskp8\"");
    assert_int_equal(strlen(t), TR_ETAG_SYNTH_LEN);

    tr_etag e;
    assert_true(tr_etag_parse(S(t), &e));
    assert_false(e.weak);

    t = synth("", false, NULL, 0, NULL, &mode);
    assert_string_equal(t, "\"EpJYWhggpKIQuX7SLkNFgD9846vgrWs25FpcY1yBtUc\"");
}

static void
synth_canonical_ignores_order_and_spacing(void **state)
{
    int mode;
    const char *want = "\"y7BjF5rLmAYUeX8jGY-P5Ke_IZY5NmsulANzG1y0Nzs\"";
    assert_string_equal(synth("{\"b\": 1, \"a\": 2}", true, NULL, 0, NULL,
                              &mode), want);
    assert_int_equal(mode, 'J');
    assert_string_equal(synth("{\n  \"a\": 2,\n  \"b\": 1\n}\n", true, NULL,
                              0, NULL, &mode), want);
}

static void
synth_canonical_drops_only_top_level_ignored_fields(void **state)
{
    char *ignore[] = { "updatedAt", "x" };
    int mode;
    assert_string_equal(
        synth("{\"a\":2,\"updatedAt\":\"2026-12-03T10:00:00Z\",\"b\":1}",
              true, ignore, 2, NULL, &mode),
        "\"y7BjF5rLmAYUeX8jGY-P5Ke_IZY5NmsulANzG1y0Nzs\"");
    /* A nested "x" is data, not a volatile top-level field. */
    assert_string_equal(
        synth("{\"id\":7,\"a\":[1,{\"y\":2,\"x\":1}]}", true, ignore, 2,
              NULL, &mode),
        "\"7P0t4Q0WSn5gn9kTQ1Ri0R515kAxN0eaWPppv_F7W4w\"");
    /* Without canonical mode the field counts. */
    char a[TR_ETAG_SYNTH_LEN + 1], b[TR_ETAG_SYNTH_LEN + 1];
    keep(a, synth("{\"a\":1,\"updatedAt\":1}", false, ignore, 2, NULL,
                    &mode));
    keep(b, synth("{\"a\":1,\"updatedAt\":2}", false, ignore, 2, NULL,
                    &mode));
    assert_string_not_equal(a, b);
}

static void
synth_non_json_and_duplicates_fall_back_to_raw(void **state)
{
    int mode;
    char raw[TR_ETAG_SYNTH_LEN + 1];

    keep(raw, synth("{\"b\": 1, \"a\": 2}", false, NULL, 0, NULL, &mode));
    synth("not json", true, NULL, 0, NULL, &mode);
    assert_int_equal(mode, 'R');
    synth("{\"a\":1,\"a\":2}", true, NULL, 0, NULL, &mode);
    assert_int_equal(mode, 'R');
    /* The mode byte keeps a raw body apart from a canonical one even when
     * the bytes are equal. */
    char canon[TR_ETAG_SYNTH_LEN + 1];
    keep(canon, synth("{\"a\":2,\"b\":1}", true, NULL, 0, NULL, &mode));
    assert_int_equal(mode, 'J');
    assert_string_not_equal(canon,
                            synth("{\"a\":2,\"b\":1}", false, NULL, 0, NULL,
                                  &mode));
}

static void
synth_content_coding_counts_and_disables_canonical(void **state)
{
    int mode;
    const char *want = "\"sRFSSoCcLadZSvnq7BHP3hDAI-lrKg6myhkvufCYCbY\"";
    assert_string_equal(synth("\x1f\x8b\x08", true, NULL, 0, " GZip ",
                              &mode), want);
    assert_int_equal(mode, 'R');
    /* JSON bytes under a coding are not re-serialised: they are not the
     * representation's data. */
    synth("{\"a\":1}", true, NULL, 0, "gzip", &mode);
    assert_int_equal(mode, 'R');
    /* identity is no coding at all. */
    char a[TR_ETAG_SYNTH_LEN + 1];
    keep(a, synth("{\"a\":1}", true, NULL, 0, "Identity", &mode));
    assert_int_equal(mode, 'J');
    assert_string_equal(a, synth("{\"a\":1}", true, NULL, 0, NULL, &mode));
    assert_string_not_equal(a, synth("{\"a\":1}", true, NULL, 0, "br",
                                     &mode));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(list_single_strong_tag),
        cmocka_unit_test(list_ows_and_empty_elements_accepted),
        cmocka_unit_test(list_star_alone_is_any),
        cmocka_unit_test(list_star_mixed_with_tags_is_invalid),
        cmocka_unit_test(list_malformed_tags_are_invalid),
        cmocka_unit_test(list_etagc_edges_accepted),
        cmocka_unit_test(list_field_lines_are_joined),
        cmocka_unit_test(list_empty_value_is_present_and_matches_nothing),
        cmocka_unit_test(list_too_many_tags_refused),
        cmocka_unit_test(list_error_is_sticky),
        cmocka_unit_test(single_tag_parse),
        cmocka_unit_test(comparison_table),
        cmocka_unit_test(list_match_strong_ignores_weak_members),
        cmocka_unit_test(synth_raw_matches_independent_digest),
        cmocka_unit_test(synth_canonical_ignores_order_and_spacing),
        cmocka_unit_test(synth_canonical_drops_only_top_level_ignored_fields),
        cmocka_unit_test(synth_non_json_and_duplicates_fall_back_to_raw),
        cmocka_unit_test(synth_content_coding_counts_and_disables_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
