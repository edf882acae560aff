/* The raw header-block and field rules of src/core/http_head.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/http_head.h"

#define CHECK(s, want) \
    assert_int_equal(tr_head_check_block(s, sizeof(s) - 1, 100), want)

static void
well_formed_block_passes(void **state)
{
    CHECK("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\tb\r\n\r\n", TR_HEAD_OK);
}

static void
bare_cr_and_lf_are_refused(void **state)
{
    CHECK("GET / HTTP/1.1\r\nHost: x\rY: 1\r\n\r\n", TR_HEAD_BARE_CR);
    CHECK("GET / HTTP/1.1\nHost: x\r\n\r\n", TR_HEAD_BARE_LF);
    CHECK("GET / HTTP/1.1\r\nHost: x\r\n\n", TR_HEAD_BARE_LF);
}

static void
obs_fold_and_bad_names_are_refused(void **state)
{
    CHECK("GET / HTTP/1.1\r\nHost: x\r\n y\r\n\r\n", TR_HEAD_OBS_FOLD);
    CHECK("GET / HTTP/1.1\r\nHost: x\r\n\tz\r\n\r\n", TR_HEAD_OBS_FOLD);
    CHECK("GET / HTTP/1.1\r\nX A: 1\r\n\r\n", TR_HEAD_BAD_NAME);
    CHECK("GET / HTTP/1.1\r\n: 1\r\n\r\n", TR_HEAD_BAD_NAME);
    CHECK("GET / HTTP/1.1\r\nNoColon\r\n\r\n", TR_HEAD_BAD_NAME);
}

static void
control_bytes_are_refused_in_values_and_start_line(void **state)
{
    static const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    assert_int_equal(tr_head_check_block(nul, sizeof(nul) - 1, 100),
                     TR_HEAD_BAD_VALUE);
    CHECK("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", TR_HEAD_BAD_VALUE);
    CHECK("GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", TR_HEAD_BAD_START_LINE);
}

static void
field_count_is_capped(void **state)
{
    static const char b[] = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_int_equal(tr_head_check_block(b, sizeof(b) - 1, 2),
                     TR_HEAD_TOO_MANY_FIELDS);
    assert_int_equal(tr_head_check_block(b, sizeof(b) - 1, 3), TR_HEAD_OK);
}

static void
block_must_end_exactly_at_the_empty_line(void **state)
{
    CHECK("GET / HTTP/1.1\r\nHost: x\r\n", TR_HEAD_INCOMPLETE);
    CHECK("GET / HTTP/1.1\r\nHost: x\r\n\r\nX", TR_HEAD_INCOMPLETE);
}

static tr_header
hdr(const char *n, const char *v)
{
    tr_header h = { n, strlen(n), v, strlen(v) };
    return h;
}

static void
framing_rules_over_fields(void **state)
{
    tr_header two_hosts[] = { hdr("Host", "a"), hdr("host", "b") };
    assert_int_equal(tr_head_check_fields(two_hosts, 2, true),
                     TR_HEAD_DUPLICATE_HOST);
    tr_header none[] = { hdr("X", "1") };
    assert_int_equal(tr_head_check_fields(none, 1, true),
                     TR_HEAD_MISSING_HOST);
    assert_int_equal(tr_head_check_fields(none, 1, false), TR_HEAD_OK);
    tr_header clte[] = { hdr("Host", "a"), hdr("Content-Length", "3"),
                         hdr("Transfer-Encoding", "chunked") };
    assert_int_equal(tr_head_check_fields(clte, 3, true),
                     TR_HEAD_CL_AND_TE);
    tr_header gz[] = { hdr("Host", "a"),
                       hdr("Transfer-Encoding", "gzip, chunked") };
    assert_int_equal(tr_head_check_fields(gz, 2, true), TR_HEAD_BAD_TE);
    tr_header te10[] = { hdr("Host", "a"),
                         hdr("Transfer-Encoding", "chunked") };
    assert_int_equal(tr_head_check_fields(te10, 2, false),
                     TR_HEAD_TE_HTTP10);
    tr_header cls[] = { hdr("Host", "a"), hdr("Content-Length", "3"),
                        hdr("Content-Length", "4") };
    assert_int_equal(tr_head_check_fields(cls, 3, true), TR_HEAD_BAD_CL);
    tr_header same[] = { hdr("Host", "a"), hdr("Content-Length", "3"),
                         hdr("Content-Length", "3") };
    assert_int_equal(tr_head_check_fields(same, 3, true), TR_HEAD_OK);
    tr_header neg[] = { hdr("Host", "a"), hdr("Content-Length", "-1") };
    assert_int_equal(tr_head_check_fields(neg, 2, true), TR_HEAD_BAD_CL);
}

static void
host_values_follow_uri_host_and_port(void **state)
{
    const char *good[] = { "", "a", "example.com:8080", "127.0.0.1",
                           "[::1]", "[::1]:80", "a%41b", "x:" };
    const char *bad[] = { "a\"b", "u@evil", "a/b", "a b", "a:99999",
                          "a:1x", "[::1", "[]", "[zz]", ":80", "a%4" };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(tr_head_host_valid(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(tr_head_host_valid(bad[i], strlen(bad[i])));
}

static void
hop_by_hop_and_connection_lists(void **state)
{
    assert_true(tr_head_is_hop_by_hop("Keep-Alive", 10));
    assert_true(tr_head_is_hop_by_hop("TE", 2));
    assert_false(tr_head_is_hop_by_hop("X-TE", 4));
    tr_header h[] = { hdr("Connection", "keep-alive , X-Secret,") };
    assert_true(tr_head_named_in_connection(h, 1, "x-secret", 8));
    assert_false(tr_head_named_in_connection(h, 1, "x-sec", 5));
    assert_true(tr_head_list_has("gzip, 100-Continue", 18, "100-continue"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(well_formed_block_passes),
        cmocka_unit_test(bare_cr_and_lf_are_refused),
        cmocka_unit_test(obs_fold_and_bad_names_are_refused),
        cmocka_unit_test(control_bytes_are_refused_in_values_and_start_line),
        cmocka_unit_test(field_count_is_capped),
        cmocka_unit_test(block_must_end_exactly_at_the_empty_line),
        cmocka_unit_test(framing_rules_over_fields),
        cmocka_unit_test(host_values_follow_uri_host_and_port),
        cmocka_unit_test(hop_by_hop_and_connection_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
