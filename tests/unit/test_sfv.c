/* RFC 9651 serialisation and strict parsing of strings, tokens, lists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/sfv.h"

static int
ser(const char *s, char *buf, size_t cap, size_t *n)
{
    return tr_sf_string(s, strlen(s), buf, cap, n);
}

static void
string_is_quoted_with_quote_and_backslash_escaped(void **state)
{
    char buf[64];
    size_t n;

    assert_int_equal(ser("alice", buf, sizeof(buf), &n), TR_SF_OK);
    assert_string_equal(buf, "\"alice\"");
    assert_int_equal(n, 7);
    assert_int_equal(ser("a\"b\\c", buf, sizeof(buf), &n), TR_SF_OK);
    assert_string_equal(buf, "\"a\\\"b\\\\c\"");
    assert_int_equal(ser("", buf, sizeof(buf), &n), TR_SF_OK);
    assert_string_equal(buf, "\"\"");
    assert_int_equal(ser(" ~", buf, sizeof(buf), &n), TR_SF_OK);
}

static void
string_refuses_bytes_outside_printable_ascii(void **state)
{
    const char *bad[] = { "a\rb", "a\nb", "a\tb", "\x7f", "\x1f",
                          "caf\xc3\xa9", "\x80" };
    char buf[64];
    size_t n;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ser(bad[i], buf, sizeof(buf), &n), TR_SF_INVALID);
    /* NUL inside the given length too. */
    assert_int_equal(tr_sf_string("a\0b", 3, buf, sizeof(buf), &n),
                     TR_SF_INVALID);
}

static void
string_reports_a_short_buffer(void **state)
{
    char buf[64];
    size_t n;

    assert_int_equal(ser("abc", buf, 5, &n), TR_SF_NOSPACE);
    assert_int_equal(ser("abc", buf, 6, &n), TR_SF_OK);
    assert_int_equal(ser("\"\"", buf, 6, &n), TR_SF_NOSPACE);
    assert_int_equal(ser("\"\"", buf, tr_sf_string_max(2), &n), TR_SF_OK);
}

static void
list_joins_strings_current_first(void **state)
{
    const char *items[] = { "agent:planner", "agent:mailbot" };
    char buf[64];
    size_t n;

    assert_int_equal(tr_sf_string_list(items, 2, buf, sizeof(buf), &n),
                     TR_SF_OK);
    assert_string_equal(buf, "\"agent:planner\", \"agent:mailbot\"");
    assert_int_equal(tr_sf_string_list(items, 0, buf, sizeof(buf), &n),
                     TR_SF_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tr_sf_string_list(items, 2, buf, 20, &n),
                     TR_SF_NOSPACE);
}

static void
token_syntax(void **state)
{
    char buf[16];
    size_t n;

    assert_true(tr_sf_token_ok("agent", 5));
    assert_true(tr_sf_token_ok("*a:b/c", 6));
    assert_false(tr_sf_token_ok("1abc", 4));
    assert_false(tr_sf_token_ok("a b", 3));
    assert_false(tr_sf_token_ok("", 0));
    assert_int_equal(tr_sf_token("human", 5, buf, sizeof(buf), &n),
                     TR_SF_OK);
    assert_string_equal(buf, "human");
}

static void
parse_string_unescapes(void **state)
{
    char out[32];
    size_t used, n;

    assert_int_equal(tr_sf_parse_string("\"a\\\"b\\\\c\" rest", 15, &used,
                                        out, sizeof(out), &n), TR_SF_OK);
    assert_string_equal(out, "a\"b\\c");
    assert_int_equal(used, 9);
    assert_int_equal(n, 5);
}

static void
parse_string_refuses_bad_input(void **state)
{
    const char *bad[] = { "abc", "\"abc", "\"a\\nb\"", "\"a\tb\"",
                          "\"caf\xc3\xa9\"", "\"a\\", "" };
    char out[32];
    size_t used, n;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tr_sf_parse_string(bad[i], strlen(bad[i]), &used,
                                            out, sizeof(out), &n),
                         TR_SF_INVALID);
    assert_int_equal(tr_sf_parse_string("\"abcdef\"", 8, &used, out, 4, &n),
                     TR_SF_NOSPACE);
}

static void
item_string_allows_spaces_and_parameters_only(void **state)
{
    char out[64];
    size_t n;
    const char *ok[] = {
        "\"8e03978e-40d5-43e8-bc93-6894a57f9324\"",
        "  \"k\"  ",
        "\"k\";a=1;b;c=\"x\";d=?0;e=:AQID:;f=tok/en;g=-1.25;h=@1700000000",
        "\"k\"; a=1",
    };
    const char *bad[] = {
        "k", "\"k\" x", "\"k\",\"l\"", "\"k\";A=1", "\"k\";=1",
        "\"k\";a=", "\"k\";a=1.2345", "\"k\";a=1234567890123456",
        "\"k\";a=?2", "\"k\";a=:AQ", "\t\"k\"", "\"k\";a=%\"x\"",
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_int_equal(tr_sf_parse_item_string(ok[i], strlen(ok[i]), out,
                                                 sizeof(out), &n), TR_SF_OK);
    assert_int_equal(tr_sf_parse_item_string(ok[1], strlen(ok[1]), out,
                                             sizeof(out), &n), TR_SF_OK);
    assert_string_equal(out, "k");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tr_sf_parse_item_string(bad[i], strlen(bad[i]),
                                                 out, sizeof(out), &n),
                         TR_SF_INVALID);
}

static void
item_token_parses(void **state)
{
    const char *t;
    size_t n;

    assert_int_equal(tr_sf_parse_item_token(" agent;x=1 ", 11, &t, &n),
                     TR_SF_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(t, "agent", 5);
    assert_int_equal(tr_sf_parse_item_token("\"agent\"", 7, &t, &n),
                     TR_SF_INVALID);
}

static void
list_round_trips(void **state)
{
    const char *items[] = { "agent:planner", "a \"quoted\" \\ one", "" };
    char ser_buf[128], out[128];
    size_t n, starts[4], count;

    assert_int_equal(tr_sf_string_list(items, 3, ser_buf, sizeof(ser_buf),
                                       &n), TR_SF_OK);
    assert_int_equal(tr_sf_parse_string_list(ser_buf, n, out, sizeof(out),
                                             starts, 4, &count), TR_SF_OK);
    assert_int_equal(count, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(out + starts[i], items[i]);
}

static void
list_parser_refuses_bad_lists(void **state)
{
    const char *bad[] = { "\"a\",", "\"a\" \"b\"", "\"a\",,\"b\"", "a",
                          "(\"a\")", "\"a\";" };
    char out[64];
    size_t starts[4], count;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tr_sf_parse_string_list(bad[i], strlen(bad[i]),
                                                 out, sizeof(out), starts, 4,
                                                 &count), TR_SF_INVALID);
    assert_int_equal(tr_sf_parse_string_list("\"a\",\"b\",\"c\"", 11, out,
                                             sizeof(out), starts, 2, &count),
                     TR_SF_NOSPACE);
    assert_int_equal(tr_sf_parse_string_list("", 0, out, sizeof(out),
                                             starts, 2, &count), TR_SF_OK);
    assert_int_equal(count, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(string_is_quoted_with_quote_and_backslash_escaped),
        cmocka_unit_test(string_refuses_bytes_outside_printable_ascii),
        cmocka_unit_test(string_reports_a_short_buffer),
        cmocka_unit_test(list_joins_strings_current_first),
        cmocka_unit_test(token_syntax),
        cmocka_unit_test(parse_string_unescapes),
        cmocka_unit_test(parse_string_refuses_bad_input),
        cmocka_unit_test(item_string_allows_spaces_and_parameters_only),
        cmocka_unit_test(item_token_parses),
        cmocka_unit_test(list_round_trips),
        cmocka_unit_test(list_parser_refuses_bad_lists),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
