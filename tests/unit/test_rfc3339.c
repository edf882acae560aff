/* Time arguments of `treaty audit`: RFC 3339 and relative forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/rfc3339.h"

#define NOW 1700000000000LL /* 2023-11-14T22:13:20Z */

static int64_t
parsed(const char *s)
{
    int64_t v = 0;

    assert_int_equal(tr_time_arg_parse(s, NOW, &v), 0);
    return v;
}

static void
test_rfc3339_utc_and_offsets(void **state)
{
    assert_int_equal(parsed("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parsed("2023-11-14T22:13:20Z"), NOW);
    assert_int_equal(parsed("2023-11-14t22:13:20.5z"), NOW + 500);
    assert_int_equal(parsed("2023-11-14 22:13:20.123456Z"), NOW + 123);
    assert_int_equal(parsed("2023-11-15T00:13:20+02:00"), NOW);
    assert_int_equal(parsed("2023-11-14T20:43:20-01:30"), NOW);
    assert_int_equal(parsed("2024-02-29T00:00:00Z"), 1709164800000LL);
    assert_int_equal(parsed("1969-12-31T23:59:59Z"), -1000);
}

static void
test_date_alone_is_midnight_utc(void **state)
{
    assert_int_equal(parsed("2023-11-14"), NOW - (22 * 3600 + 13 * 60 + 20)
                                                   * 1000LL);
}

static void
test_relative_forms_count_back_from_now(void **state)
{
    assert_int_equal(parsed("now"), NOW);
    assert_int_equal(parsed("90s"), NOW - 90000);
    assert_int_equal(parsed("15m"), NOW - 900000);
    assert_int_equal(parsed("1h"), NOW - 3600000);
    assert_int_equal(parsed("2d"), NOW - 2 * 86400000LL);
    assert_int_equal(parsed("1w"), NOW - 7 * 86400000LL);
}

static void
test_malformed_times_are_refused(void **state)
{
    const char *bad[] = {
        "", "1", "h", "1y", "1hh", "-1h", "2023-11-14T22:13:20",
        "2023-13-01", "2023-02-29", "2023-11-14T24:00:00Z",
        "2023-11-14T22:13:20.Z", "2023-11-14T22:13:20+0200",
        "2023-11-14T22:13:20Zjunk", "yesterday", "99999999999s",
    };
    int64_t v;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tr_time_arg_parse(bad[i], NOW, &v), -1);
}

static void
test_format_round_trips(void **state)
{
    char buf[32];
    int64_t samples[] = { 0, NOW + 7, 1709164800000LL, -1, 253402300799999LL };

    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        assert_int_equal(tr_rfc3339_format(samples[i], buf, sizeof(buf)), 0);
        assert_int_equal(parsed(buf), samples[i]);
    }
    tr_rfc3339_format(NOW + 7, buf, sizeof(buf));
    assert_string_equal(buf, "2023-11-14T22:13:20.007Z");
    assert_int_equal(tr_rfc3339_format(NOW, buf, 10), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339_utc_and_offsets),
        cmocka_unit_test(test_date_alone_is_midnight_utc),
        cmocka_unit_test(test_relative_forms_count_back_from_now),
        cmocka_unit_test(test_malformed_times_are_refused),
        cmocka_unit_test(test_format_round_trips),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
