/* RateLimit-Policy and RateLimit formatting, and violated-policies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/ratelimit_headers.h"

static const tr_ratelimit_item route[] = {
    {"rate", 20, 2, false, 0, 1},
    {"email", 30, 60, false, 0, 20},
    {"inflight", 4, 0, true, 3, -1},
};

static void
test_policy_field_matches_the_draft_syntax(void **state)
{
    char buf[256];
    int n = tr_ratelimit_policy_format(buf, sizeof(buf), route, 3);

    assert_string_equal(buf, "\"rate\";q=20;w=2, \"email\";q=30;w=60, "
                             "\"inflight\";q=4;qu=\"concurrent-requests\"");
    assert_int_equal(n, (int)strlen(buf));
}

static void
test_ratelimit_field_has_r_and_t_only_when_known(void **state)
{
    char buf[256];

    assert_true(tr_ratelimit_format(buf, sizeof(buf), route, 3) > 0);
    assert_string_equal(buf,
                        "\"rate\";r=0;t=1, \"email\";r=0;t=20, "
                        "\"inflight\";r=3");
}

static void
test_large_values_are_written_in_full(void **state)
{
    tr_ratelimit_item it = {"big", 4294967295u, 4294967295u, false,
                            4294967295u, 999999999999999};
    char buf[128];

    tr_ratelimit_policy_format(buf, sizeof(buf), &it, 1);
    assert_string_equal(buf, "\"big\";q=4294967295;w=4294967295");
    tr_ratelimit_format(buf, sizeof(buf), &it, 1);
    assert_string_equal(buf, "\"big\";r=4294967295;t=999999999999999");
}

static void
test_no_items_write_an_empty_value(void **state)
{
    char buf[8] = "junk";

    assert_int_equal(tr_ratelimit_format(buf, sizeof(buf), route, 0), 0);
    assert_string_equal(buf, "");
}

static void
test_too_small_a_buffer_fails_without_overrun(void **state)
{
    char buf[64];
    size_t cap;

    for (cap = 0; cap < 40; cap++) {
        memset(buf, 'X', sizeof(buf));
        assert_int_equal(tr_ratelimit_format(buf, cap, route, 3), -1);
        assert_int_equal(buf[cap], 'X');
    }
}

static void
test_quotes_and_backslashes_are_escaped_control_bytes_refused(void **state)
{
    tr_ratelimit_item it = {"a\"b\\c", 1, 0, false, 1, -1};
    char buf[64];

    assert_true(tr_ratelimit_format(buf, sizeof(buf), &it, 1) > 0);
    assert_string_equal(buf, "\"a\\\"b\\\\c\";r=1");
    it.name = "tab\there";
    assert_int_equal(tr_ratelimit_format(buf, sizeof(buf), &it, 1), -1);
    it.name = "caf\xc3\xa9";
    assert_int_equal(tr_ratelimit_policy_format(buf, sizeof(buf), &it, 1),
                     -1);
    it.name = "";
    assert_false(tr_ratelimit_name_ok(it.name));
    assert_true(tr_ratelimit_name_ok("email"));
}

static void
test_violated_policies_member_is_a_string_array(void **state)
{
    const char *names[] = {"email", "rate"};
    json_t *p = json_object();
    char *text;

    assert_int_equal(tr_ratelimit_add_violated(p, names, 2), 0);
    text = json_dumps(p, JSON_COMPACT);
    assert_string_equal(text, "{\"violated-policies\":[\"email\",\"rate\"]}");
    free(text);
    json_decref(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_field_matches_the_draft_syntax),
        cmocka_unit_test(test_ratelimit_field_has_r_and_t_only_when_known),
        cmocka_unit_test(test_large_values_are_written_in_full),
        cmocka_unit_test(test_no_items_write_an_empty_value),
        cmocka_unit_test(test_too_small_a_buffer_fails_without_overrun),
        cmocka_unit_test(
            test_quotes_and_backslashes_are_escaped_control_bytes_refused),
        cmocka_unit_test(test_violated_policies_member_is_a_string_array),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
