/* Request-target normalisation (src/core/target.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/target.h"

static char buf[4096];
static tr_target tg;

static tr_target_status
norm_m(const char *t, uint32_t method, const char *host)
{
    return tr_target_normalize(t, strlen(t), method, host,
                               host ? strlen(host) : 0, buf, sizeof(buf),
                               &tg);
}

static tr_target_status
norm(const char *t)
{
    return norm_m(t, TR_M_GET, "gw.example:8080");
}

static void
assert_path(const char *t, const char *want)
{
    tr_target_status st = norm(t);
    if (st != TR_TARGET_OK)
        fail_msg("'%s' refused: %s", t, tr_target_reason(st));
    assert_int_equal(tg.path_len, strlen(want));
    assert_memory_equal(tg.path, want, tg.path_len);
}

static void
assert_refused(const char *t, tr_target_status want)
{
    tr_target_status st = norm(t);
    if (st != want)
        fail_msg("'%s': got '%s', want '%s'", t, tr_target_reason(st),
                 tr_target_reason(want));
    assert_null(tg.path);
}

static void
origin_form_splits_path_and_query(void **state)
{
    assert_int_equal(norm("/events/7?x=1&y=2"), TR_TARGET_OK);
    assert_int_equal(tg.path_len, 9);
    assert_memory_equal(tg.path, "/events/7", 9);
    assert_non_null(tg.query);
    assert_int_equal(tg.query_len, 7);
    assert_memory_equal(tg.query, "x=1&y=2", 7);
    assert_false(tg.asterisk);
    assert_false(tg.absolute);
}

static void
no_question_mark_means_no_query(void **state)
{
    assert_int_equal(norm("/events"), TR_TARGET_OK);
    assert_null(tg.query);
    assert_int_equal(norm("/events?"), TR_TARGET_OK);
    assert_non_null(tg.query);
    assert_int_equal(tg.query_len, 0);
}

static void
query_is_kept_byte_exact(void **state)
{
    const char *t = "/s?q=%2f%2e%2E..%41&a[b]=c/d?e";
    assert_int_equal(norm(t), TR_TARGET_OK);
    assert_int_equal(tg.query_len, strlen(t) - 3);
    assert_memory_equal(tg.query, t + 3, tg.query_len);
    assert_ptr_equal(tg.query, t + 3);
}

static void
query_with_bad_bytes_is_refused(void **state)
{
    assert_refused("/s?q=a b", TR_TARGET_BAD_CHAR);
    assert_refused("/s?q=a\tb", TR_TARGET_BAD_CHAR);
    assert_refused("/s?q=\x7f", TR_TARGET_BAD_CHAR);
    assert_refused("/s?q=\xc3\xa9", TR_TARGET_BAD_CHAR);
    assert_refused("/s?q=%zz", TR_TARGET_BAD_PERCENT);
    assert_refused("/s?q=%4", TR_TARGET_BAD_PERCENT);
    assert_refused("/s?q=1#frag", TR_TARGET_FRAGMENT);
}

static void
unreserved_encodings_are_decoded(void **state)
{
    assert_path("/%41%62%63", "/Abc");
    assert_path("/a%2Db%5Fc%7Ed%2ee", "/a-b_c~d.e");
    assert_path("/%30%39", "/09");
}

static void
other_encodings_get_upper_case_hex(void **state)
{
    assert_path("/a%3ab", "/a%3Ab");
    assert_path("/a%3Ab", "/a%3Ab");
    assert_path("/%c3%a9t%C3%A9", "/%C3%A9t%C3%A9");
    assert_path("/a%40b", "/a%40b");
    assert_path("/a%20b", "/a%20b");
    assert_path("/q%3fx", "/q%3Fx");
}

static void
raw_sub_delims_colon_and_at_pass(void **state)
{
    assert_path("/a:b@c!$&'()*+,;=", "/a:b@c!$&'()*+,;=");
}

static void
encoded_slash_is_refused(void **state)
{
    assert_refused("/a%2Fb", TR_TARGET_ENCODED_SLASH);
    assert_refused("/a%2fb", TR_TARGET_ENCODED_SLASH);
    assert_refused("/%2F", TR_TARGET_ENCODED_SLASH);
}

static void
encoded_backslash_nul_and_controls_are_refused(void **state)
{
    assert_refused("/a%5Cb", TR_TARGET_ENCODED_BACKSLASH);
    assert_refused("/a%5cb", TR_TARGET_ENCODED_BACKSLASH);
    assert_refused("/a%00b", TR_TARGET_ENCODED_NUL);
    assert_refused("/a%0Ab", TR_TARGET_ENCODED_CONTROL);
    assert_refused("/a%0db", TR_TARGET_ENCODED_CONTROL);
    assert_refused("/a%7Fb", TR_TARGET_ENCODED_CONTROL);
}

static void
raw_backslash_is_refused(void **state)
{
    assert_refused("/a\\b", TR_TARGET_BACKSLASH);
    assert_refused("/..\\x", TR_TARGET_BACKSLASH);
}

static void
raw_controls_spaces_and_non_ascii_are_refused(void **state)
{
    static const char t[] = "/a\0b";

    assert_refused("/a b", TR_TARGET_BAD_CHAR);
    assert_refused("/a\tb", TR_TARGET_BAD_CHAR);
    assert_refused("/a\rb", TR_TARGET_BAD_CHAR);
    assert_refused("/a\x7f", TR_TARGET_BAD_CHAR);
    assert_refused("/caf\xc3\xa9", TR_TARGET_BAD_CHAR);
    assert_refused("/a\"b", TR_TARGET_BAD_CHAR);
    assert_refused("/a<b>", TR_TARGET_BAD_CHAR);
    assert_refused("/a{b}", TR_TARGET_BAD_CHAR);
    assert_refused("/a[b]", TR_TARGET_BAD_CHAR);
    assert_refused("/a|b", TR_TARGET_BAD_CHAR);
    assert_int_equal(tr_target_normalize(t, sizeof(t) - 1, TR_M_GET, NULL,
                                         0, buf, sizeof(buf), &tg),
                     TR_TARGET_BAD_CHAR);
}

static void
raw_dot_segments_are_refused(void **state)
{
    assert_refused("/./a", TR_TARGET_DOT_SEGMENT);
    assert_refused("/a/./b", TR_TARGET_DOT_SEGMENT);
    assert_refused("/a/../b", TR_TARGET_DOT_SEGMENT);
    assert_refused("/..", TR_TARGET_DOT_SEGMENT);
    assert_refused("/.", TR_TARGET_DOT_SEGMENT);
    assert_refused("/a/.", TR_TARGET_DOT_SEGMENT);
    assert_refused("/a/..", TR_TARGET_DOT_SEGMENT);
    assert_refused("/a/..?x=1", TR_TARGET_DOT_SEGMENT);
    assert_refused("/a/../", TR_TARGET_DOT_SEGMENT);
}

static void
encoded_dot_segments_are_refused(void **state)
{
    assert_refused("/%2e/a", TR_TARGET_DOT_SEGMENT);
    assert_refused("/%2E%2E/a", TR_TARGET_DOT_SEGMENT);
    assert_refused("/a/.%2e", TR_TARGET_DOT_SEGMENT);
    assert_refused("/a/%2e.", TR_TARGET_DOT_SEGMENT);
    assert_refused("/a/%2E", TR_TARGET_DOT_SEGMENT);
    assert_refused("/a/%2e%2E/b", TR_TARGET_DOT_SEGMENT);
}

static void
dots_inside_names_pass(void **state)
{
    assert_path("/a/.b", "/a/.b");
    assert_path("/a/..b", "/a/..b");
    assert_path("/a/b..", "/a/b..");
    assert_path("/...", "/...");
    assert_path("/file.txt", "/file.txt");
    assert_path("/%2e%2e%2e", "/...");
}

static void
empty_segments_are_refused_but_trailing_slash_kept(void **state)
{
    assert_refused("//a", TR_TARGET_EMPTY_SEGMENT);
    assert_refused("/a//b", TR_TARGET_EMPTY_SEGMENT);
    assert_refused("/a//", TR_TARGET_EMPTY_SEGMENT);
    assert_path("/a/", "/a/");
    assert_path("/", "/");
}

static void
malformed_percent_is_refused(void **state)
{
    assert_refused("/%", TR_TARGET_BAD_PERCENT);
    assert_refused("/a%4", TR_TARGET_BAD_PERCENT);
    assert_refused("/a%zz", TR_TARGET_BAD_PERCENT);
    assert_refused("/a%4g", TR_TARGET_BAD_PERCENT);
    assert_refused("/a%%41", TR_TARGET_BAD_PERCENT);
}

static void
empty_and_formless_targets_are_refused(void **state)
{
    assert_refused("", TR_TARGET_EMPTY);
    assert_refused("a/b", TR_TARGET_BAD_FORM);
    assert_refused("?x=1", TR_TARGET_BAD_FORM);
    assert_refused("example.com:443", TR_TARGET_BAD_FORM);
    assert_refused("/a#frag", TR_TARGET_FRAGMENT);
}

static void
asterisk_only_with_options(void **state)
{
    assert_int_equal(norm_m("*", TR_M_OPTIONS, NULL), TR_TARGET_OK);
    assert_true(tg.asterisk);
    assert_int_equal(tg.path_len, 1);
    assert_int_equal(tg.path[0], '*');
    assert_int_equal(norm_m("*", TR_M_GET, NULL), TR_TARGET_ASTERISK);
    assert_int_equal(norm_m("*x", TR_M_OPTIONS, NULL), TR_TARGET_BAD_FORM);
}

static void
connect_is_refused_as_authority_form(void **state)
{
    assert_int_equal(norm_m("example.com:443", TR_M_CONNECT, NULL),
                     TR_TARGET_AUTHORITY_FORM);
    assert_int_equal(norm_m("/x", TR_M_CONNECT, NULL),
                     TR_TARGET_AUTHORITY_FORM);
}

static void
absolute_form_for_own_host_is_normalised(void **state)
{
    assert_int_equal(norm_m("http://gw.example:8080/a/%7eb?q=%2f",
                            TR_M_GET, "gw.example:8080"),
                     TR_TARGET_OK);
    assert_true(tg.absolute);
    assert_int_equal(tg.path_len, 5);
    assert_memory_equal(tg.path, "/a/~b", 5);
    assert_int_equal(tg.query_len, 5);
    assert_memory_equal(tg.query, "q=%2f", 5);
}

static void
absolute_form_host_compare_ignores_case_and_default_port(void **state)
{
    assert_int_equal(norm_m("HTTP://GW.Example/x", TR_M_GET, "gw.example"),
                     TR_TARGET_OK);
    assert_int_equal(norm_m("http://gw.example:80/x", TR_M_GET,
                            "gw.example"), TR_TARGET_OK);
    assert_int_equal(norm_m("http://gw.example/x", TR_M_GET,
                            "gw.example:80"), TR_TARGET_OK);
    assert_int_equal(norm_m("http://[::1]:8080/x", TR_M_GET, "[::1]:8080"),
                     TR_TARGET_OK);
}

static void
absolute_form_empty_path_is_root(void **state)
{
    assert_int_equal(norm_m("http://gw.example", TR_M_GET, "gw.example"),
                     TR_TARGET_OK);
    assert_int_equal(tg.path_len, 1);
    assert_int_equal(tg.path[0], '/');
    assert_null(tg.query);
    assert_int_equal(norm_m("http://gw.example?a=1", TR_M_GET,
                            "gw.example"), TR_TARGET_OK);
    assert_int_equal(tg.path_len, 1);
    assert_int_equal(tg.query_len, 3);
}

static void
absolute_form_for_other_host_is_refused(void **state)
{
    assert_int_equal(norm_m("http://evil.example/x", TR_M_GET,
                            "gw.example"), TR_TARGET_FOREIGN_HOST);
    assert_int_equal(norm_m("http://gw.example:81/x", TR_M_GET,
                            "gw.example"), TR_TARGET_FOREIGN_HOST);
    assert_int_equal(norm_m("http://gw.example/x", TR_M_GET, NULL),
                     TR_TARGET_FOREIGN_HOST);
    assert_int_equal(norm_m("http://gw.example.evil/x", TR_M_GET,
                            "gw.example"), TR_TARGET_FOREIGN_HOST);
}

static void
absolute_form_other_schemes_and_userinfo_are_refused(void **state)
{
    assert_int_equal(norm_m("https://gw.example/x", TR_M_GET,
                            "gw.example"), TR_TARGET_BAD_SCHEME);
    assert_int_equal(norm_m("ftp://gw.example/x", TR_M_GET, "gw.example"),
                     TR_TARGET_BAD_SCHEME);
    assert_int_equal(norm_m("http://u@gw.example/x", TR_M_GET,
                            "gw.example"), TR_TARGET_USERINFO);
    assert_int_equal(norm_m("http:///x", TR_M_GET, "gw.example"),
                     TR_TARGET_EMPTY);
    assert_int_equal(norm_m("http://gw.example/../x", TR_M_GET,
                            "gw.example"), TR_TARGET_DOT_SEGMENT);
}

static void
output_longer_than_cap_is_refused(void **state)
{
    char small[4];
    assert_int_equal(tr_target_normalize("/abcd", 5, TR_M_GET, NULL, 0,
                                         small, sizeof(small), &tg),
                     TR_TARGET_TOO_LONG);
    assert_int_equal(tr_target_normalize("/%41bc", 6, TR_M_GET, NULL, 0,
                                         small, sizeof(small), &tg),
                     TR_TARGET_OK);
    assert_memory_equal(tg.path, "/Abc", 4);
}

static void
normalised_path_is_a_fixed_point(void **state)
{
    static const char *const in[] = {
        "/%7ea/%3a%3A/%c3%a9", "/A%2D/b%5f", "/x/", "/",
    };
    char first[64];

    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        assert_int_equal(norm(in[i]), TR_TARGET_OK);
        size_t n = tg.path_len;
        memcpy(first, tg.path, n);
        assert_true(tr_target_path_is_normal(first, n));
        assert_int_equal(tr_target_normalize(first, n, TR_M_GET, NULL, 0,
                                             buf, sizeof(buf), &tg),
                         TR_TARGET_OK);
        assert_int_equal(tg.path_len, n);
        assert_memory_equal(tg.path, first, n);
    }
}

static void
path_is_normal_detects_unnormalised_spellings(void **state)
{
    assert_true(tr_target_path_is_normal("/a/%3A", 6));
    assert_false(tr_target_path_is_normal("/a/%3a", 6));
    assert_false(tr_target_path_is_normal("/a/%41", 6));
    assert_false(tr_target_path_is_normal("/a/..", 5));
    assert_false(tr_target_path_is_normal("/a?b", 4));
    assert_false(tr_target_path_is_normal("a", 1));
    assert_false(tr_target_path_is_normal("", 0));
}

static void
every_status_has_a_reason(void **state)
{
    for (int s = 0; s < TR_TARGET__COUNT; s++)
        assert_true(strlen(tr_target_reason((tr_target_status)s)) > 5);
    assert_string_equal(tr_target_reason(TR_TARGET__COUNT),
                        "invalid request target");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(origin_form_splits_path_and_query),
        cmocka_unit_test(no_question_mark_means_no_query),
        cmocka_unit_test(query_is_kept_byte_exact),
        cmocka_unit_test(query_with_bad_bytes_is_refused),
        cmocka_unit_test(unreserved_encodings_are_decoded),
        cmocka_unit_test(other_encodings_get_upper_case_hex),
        cmocka_unit_test(raw_sub_delims_colon_and_at_pass),
        cmocka_unit_test(encoded_slash_is_refused),
        cmocka_unit_test(encoded_backslash_nul_and_controls_are_refused),
        cmocka_unit_test(raw_backslash_is_refused),
        cmocka_unit_test(raw_controls_spaces_and_non_ascii_are_refused),
        cmocka_unit_test(raw_dot_segments_are_refused),
        cmocka_unit_test(encoded_dot_segments_are_refused),
        cmocka_unit_test(dots_inside_names_pass),
        cmocka_unit_test(empty_segments_are_refused_but_trailing_slash_kept),
        cmocka_unit_test(malformed_percent_is_refused),
        cmocka_unit_test(empty_and_formless_targets_are_refused),
        cmocka_unit_test(asterisk_only_with_options),
        cmocka_unit_test(connect_is_refused_as_authority_form),
        cmocka_unit_test(absolute_form_for_own_host_is_normalised),
        cmocka_unit_test(
            absolute_form_host_compare_ignores_case_and_default_port),
        cmocka_unit_test(absolute_form_empty_path_is_root),
        cmocka_unit_test(absolute_form_for_other_host_is_refused),
        cmocka_unit_test(
            absolute_form_other_schemes_and_userinfo_are_refused),
        cmocka_unit_test(output_longer_than_cap_is_refused),
        cmocka_unit_test(normalised_path_is_a_fixed_point),
        cmocka_unit_test(path_is_normal_detects_unnormalised_spellings),
        cmocka_unit_test(every_status_has_a_reason),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
