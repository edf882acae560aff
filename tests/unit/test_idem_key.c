/*
 * Idempotency-Key syntax and presence (src/core/idem_key.c): both forms
 * of a key, every refusal SPEC.md §2 lists (the T5 cases of
 * ../shared/cases/idempotency.md among them), the 255/256 byte boundary,
 * and which requests the contract applies to (T4).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/idem_key.h"

static tr_idem_key_status
parse(const char *v, tr_idem_key *k)
{
    return tr_idem_key_parse(v, strlen(v), 1, k);
}

static void
quoted_and_bare_forms_are_the_same_key(void **state)
{
    tr_idem_key a, b;

    assert_int_equal(parse("\"abc-5\"", &a), TR_IDEM_KEY_OK);
    assert_int_equal(parse("abc-5", &b), TR_IDEM_KEY_OK);
    assert_true(tr_idem_key_equal(&a, &b));
    assert_int_equal(a.len, 5);
    assert_string_equal(a.bytes, "abc-5");
}

static void
uuid_and_base64_keys_parse_bare(void **state)
{
    tr_idem_key k;

    assert_int_equal(parse("8e03978e-40d5-43e8-bc93-6894a57f9324", &k),
                     TR_IDEM_KEY_OK);
    assert_int_equal(parse("q+/AbC9=", &k), TR_IDEM_KEY_OK);
    assert_string_equal(k.bytes, "q+/AbC9=");
    assert_int_equal(parse("a_b-c.d~e:f@g!h$i&j(k)l*m", &k),
                     TR_IDEM_KEY_OK);
}

static void
sf_string_escapes_are_decoded(void **state)
{
    tr_idem_key k, bare;

    assert_int_equal(parse("\"a\\\"b\\\\c\"", &k), TR_IDEM_KEY_OK);
    assert_int_equal(k.len, 5);
    assert_memory_equal(k.bytes, "a\"b\\c", 5);

    /* A backslash is visible ASCII: the bare form carries it as is. */
    assert_int_equal(parse("\"x\\\\y\"", &k), TR_IDEM_KEY_OK);
    assert_int_equal(parse("x\\y", &bare), TR_IDEM_KEY_OK);
    assert_true(tr_idem_key_equal(&k, &bare));
}

static void
sf_string_may_hold_space_and_comma(void **state)
{
    tr_idem_key k;

    assert_int_equal(parse("\"a b,c\"", &k), TR_IDEM_KEY_OK);
    assert_string_equal(k.bytes, "a b,c");
}

static void
bad_escape_and_unterminated_string_are_refused(void **state)
{
    tr_idem_key k;

    assert_int_equal(parse("\"a\\nb\"", &k), TR_IDEM_KEY_SYNTAX);
    assert_int_equal(parse("\"abc", &k), TR_IDEM_KEY_SYNTAX);
    assert_int_equal(parse("\"abc\\\"", &k), TR_IDEM_KEY_SYNTAX);
    assert_int_equal(parse("\"abc\\", &k), TR_IDEM_KEY_SYNTAX);
    assert_int_equal(k.len, 0);
}

static void
surrounding_whitespace_is_ignored(void **state)
{
    tr_idem_key a, b;

    assert_int_equal(parse("  \"k-1\"\t ", &a), TR_IDEM_KEY_OK);
    assert_int_equal(parse("\tk-1  ", &b), TR_IDEM_KEY_OK);
    assert_true(tr_idem_key_equal(&a, &b));
}

static void
empty_values_are_refused(void **state)
{
    tr_idem_key k;

    assert_int_equal(parse("", &k), TR_IDEM_KEY_EMPTY);
    assert_int_equal(parse("\"\"", &k), TR_IDEM_KEY_EMPTY);
    assert_int_equal(parse("   ", &k), TR_IDEM_KEY_EMPTY);
    assert_int_equal(tr_idem_key_parse(NULL, 0, 1, &k), TR_IDEM_KEY_EMPTY);
}

static void
key_of_255_bytes_passes_and_256_is_refused(void **state)
{
    char v[300];
    tr_idem_key k;

    memset(v, 'k', 255);
    v[255] = '\0';
    assert_int_equal(parse(v, &k), TR_IDEM_KEY_OK);
    assert_int_equal(k.len, 255);
    assert_int_equal(k.bytes[255], '\0');

    memset(v, 'k', 256);
    v[256] = '\0';
    assert_int_equal(parse(v, &k), TR_IDEM_KEY_TOO_LONG);
    assert_int_equal(k.len, 0);
}

static void
quoted_limit_counts_decoded_bytes(void **state)
{
    char v[300];
    tr_idem_key k;

    /* 255 content bytes + 2 quotes = 257 bytes on the wire: fine. */
    v[0] = '"';
    memset(v + 1, 'q', 255);
    v[256] = '"';
    v[257] = '\0';
    assert_int_equal(parse(v, &k), TR_IDEM_KEY_OK);
    assert_int_equal(k.len, 255);

    v[0] = '"';
    memset(v + 1, 'q', 256);
    v[257] = '"';
    v[258] = '\0';
    assert_int_equal(parse(v, &k), TR_IDEM_KEY_TOO_LONG);

    /* 254 plain bytes and one escape decode to 255. */
    v[0] = '"';
    memset(v + 1, 'q', 254);
    v[255] = '\\';
    v[256] = '"';
    v[257] = '"';
    v[258] = '\0';
    assert_int_equal(parse(v, &k), TR_IDEM_KEY_OK);
    assert_int_equal(k.len, 255);
    assert_int_equal(k.bytes[254], '"');
}

static void
control_characters_are_refused(void **state)
{
    tr_idem_key k;

    assert_int_equal(parse("ab\x01" "c", &k), TR_IDEM_KEY_BAD_BYTE);
    assert_int_equal(parse("\"ab\x01" "c\"", &k), TR_IDEM_KEY_BAD_BYTE);
    assert_int_equal(parse("ab\tc", &k), TR_IDEM_KEY_BAD_BYTE);
    assert_int_equal(parse("\"ab\tc\"", &k), TR_IDEM_KEY_BAD_BYTE);
    assert_int_equal(parse("ab\x7f", &k), TR_IDEM_KEY_BAD_BYTE);
    assert_int_equal(parse("caf\xc3\xa9", &k), TR_IDEM_KEY_BAD_BYTE);
    assert_int_equal(parse("\"caf\xc3\xa9\"", &k), TR_IDEM_KEY_BAD_BYTE);
    /* A NUL inside the value (length given explicitly). */
    assert_int_equal(tr_idem_key_parse("ab\0cd", 5, 1, &k),
                     TR_IDEM_KEY_BAD_BYTE);
}

static void
sf_parameters_are_refused(void **state)
{
    tr_idem_key k;

    assert_int_equal(parse("\"k\";a=1", &k), TR_IDEM_KEY_PARAMS);
    assert_int_equal(parse("\"k\";a", &k), TR_IDEM_KEY_PARAMS);
    assert_int_equal(parse("\"k\" ;a=1", &k), TR_IDEM_KEY_PARAMS);
    assert_int_equal(parse("k;a=1", &k), TR_IDEM_KEY_PARAMS);
}

static void
bare_space_comma_quote_and_trailing_bytes_are_refused(void **state)
{
    tr_idem_key k;

    assert_int_equal(parse("a b", &k), TR_IDEM_KEY_SYNTAX);
    assert_int_equal(parse("a,b", &k), TR_IDEM_KEY_SYNTAX);
    assert_int_equal(parse("a\"b", &k), TR_IDEM_KEY_SYNTAX);
    assert_int_equal(parse("\"a\"b", &k), TR_IDEM_KEY_SYNTAX);
    assert_int_equal(parse("\"a\", \"b\"", &k), TR_IDEM_KEY_SYNTAX);
    assert_int_equal(parse("\"a\" x", &k), TR_IDEM_KEY_SYNTAX);
}

static void
more_than_one_field_line_is_refused(void **state)
{
    tr_idem_key k;

    assert_int_equal(tr_idem_key_parse("k-1", 3, 2, &k),
                     TR_IDEM_KEY_MULTIPLE);
    assert_int_equal(tr_idem_key_parse("k-1", 3, 7, &k),
                     TR_IDEM_KEY_MULTIPLE);
    assert_int_equal(tr_idem_key_parse(NULL, 0, 0, &k), TR_IDEM_KEY_ABSENT);
}

static void
reasons_exist_for_every_status(void **state)
{
    for (int s = TR_IDEM_KEY_OK; s <= TR_IDEM_KEY_SYNTAX; s++) {
        const char *r = tr_idem_key_reason((tr_idem_key_status)s);

        assert_non_null(r);
        assert_true(strlen(r) > 5);
    }
    assert_non_null(tr_idem_key_reason((tr_idem_key_status)99));
}

/* ---- presence (pipeline step 5) ---- */

static tr_route_cfg
route(tr_idem_mode mode)
{
    tr_route_cfg r;

    memset(&r, 0, sizeof(r));
    r.methods = TR_M_GET | TR_M_POST | TR_M_PUT;
    r.mutating = TR_M_MUTATING_DEFAULT;
    r.idempotency.mode = mode;
    return r;
}

static tr_idem_presence
check(const tr_route_cfg *r, uint32_t m, bool agent, const char *v,
      size_t lines, tr_problem_kind *p)
{
    tr_idem_key k;

    *p = TR_P__COUNT;
    return tr_idem_check_presence(r, m, agent, v, v ? strlen(v) : 0, lines,
                                  &k, p, NULL);
}

static void
missing_key_refused_for_agents_where_required_for_agents(void **state)
{
    tr_route_cfg r = route(TR_IDEM_REQUIRED_FOR_AGENTS);
    tr_problem_kind p;

    assert_int_equal(check(&r, TR_M_POST, true, NULL, 0, &p),
                     TR_IDEM_REFUSE);
    assert_int_equal(p, TR_P_IDEM_KEY_REQUIRED);
    assert_int_equal(tr_problem(p)->status, 400);
    /* A human without a key passes, without dedupe (T4). */
    assert_int_equal(check(&r, TR_M_POST, false, NULL, 0, &p),
                     TR_IDEM_UNKEYED);
}

static void
missing_key_refused_for_everyone_where_required(void **state)
{
    tr_route_cfg r = route(TR_IDEM_REQUIRED);
    tr_problem_kind p;

    assert_int_equal(check(&r, TR_M_POST, false, NULL, 0, &p),
                     TR_IDEM_REFUSE);
    assert_int_equal(p, TR_P_IDEM_KEY_REQUIRED);
    assert_int_equal(check(&r, TR_M_PUT, true, NULL, 0, &p),
                     TR_IDEM_REFUSE);
}

static void
optional_mode_keys_when_present_only(void **state)
{
    tr_route_cfg r = route(TR_IDEM_OPTIONAL);
    tr_problem_kind p;

    assert_int_equal(check(&r, TR_M_POST, true, NULL, 0, &p),
                     TR_IDEM_UNKEYED);
    assert_int_equal(check(&r, TR_M_POST, true, "\"k\"", 1, &p),
                     TR_IDEM_KEYED);
}

static void
human_key_on_agent_route_is_honoured(void **state)
{
    tr_route_cfg r = route(TR_IDEM_REQUIRED_FOR_AGENTS);
    tr_problem_kind p;

    assert_int_equal(check(&r, TR_M_POST, false, "k-1", 1, &p),
                     TR_IDEM_KEYED);
}

static void
invalid_key_is_refused_in_every_active_mode(void **state)
{
    tr_idem_mode modes[] = { TR_IDEM_OPTIONAL, TR_IDEM_REQUIRED_FOR_AGENTS,
                             TR_IDEM_REQUIRED };
    tr_problem_kind p;

    for (size_t i = 0; i < 3; i++) {
        tr_route_cfg r = route(modes[i]);

        assert_int_equal(check(&r, TR_M_POST, false, "\"\"", 1, &p),
                         TR_IDEM_REFUSE);
        assert_int_equal(p, TR_P_IDEM_KEY_INVALID);
        assert_int_equal(check(&r, TR_M_POST, true, "k", 2, &p),
                         TR_IDEM_REFUSE);
        assert_int_equal(p, TR_P_IDEM_KEY_INVALID);
    }
}

static void
keys_on_get_head_options_are_ignored(void **state)
{
    tr_route_cfg r = route(TR_IDEM_REQUIRED);
    tr_problem_kind p;

    /* Even a route that counts GET as mutating does not key it. */
    r.mutating |= TR_M_GET | TR_M_HEAD | TR_M_OPTIONS;
    assert_int_equal(check(&r, TR_M_GET, true, "k-1", 1, &p),
                     TR_IDEM_UNKEYED);
    assert_int_equal(check(&r, TR_M_HEAD, true, NULL, 0, &p),
                     TR_IDEM_UNKEYED);
    /* An invalid key on a GET is ignored too, not refused. */
    assert_int_equal(check(&r, TR_M_OPTIONS, true, "a b", 1, &p),
                     TR_IDEM_UNKEYED);
    assert_int_equal(p, TR_P__COUNT);
}

static void
non_mutating_methods_and_mode_off_are_unkeyed(void **state)
{
    tr_route_cfg r = route(TR_IDEM_REQUIRED);
    tr_route_cfg off = route(TR_IDEM_OFF);
    tr_problem_kind p;

    assert_int_equal(check(&r, TR_M_PROPFIND, true, NULL, 0, &p),
                     TR_IDEM_UNKEYED);
    assert_int_equal(check(&off, TR_M_POST, true, NULL, 0, &p),
                     TR_IDEM_UNKEYED);
    assert_int_equal(check(&off, TR_M_POST, true, "\"k\";x", 1, &p),
                     TR_IDEM_UNKEYED);
    assert_false(tr_idem_applies(&off, TR_M_POST));
    assert_true(tr_idem_applies(&r, TR_M_DELETE));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quoted_and_bare_forms_are_the_same_key),
        cmocka_unit_test(uuid_and_base64_keys_parse_bare),
        cmocka_unit_test(sf_string_escapes_are_decoded),
        cmocka_unit_test(sf_string_may_hold_space_and_comma),
        cmocka_unit_test(bad_escape_and_unterminated_string_are_refused),
        cmocka_unit_test(surrounding_whitespace_is_ignored),
        cmocka_unit_test(empty_values_are_refused),
        cmocka_unit_test(key_of_255_bytes_passes_and_256_is_refused),
        cmocka_unit_test(quoted_limit_counts_decoded_bytes),
        cmocka_unit_test(control_characters_are_refused),
        cmocka_unit_test(sf_parameters_are_refused),
        cmocka_unit_test(
            bare_space_comma_quote_and_trailing_bytes_are_refused),
        cmocka_unit_test(more_than_one_field_line_is_refused),
        cmocka_unit_test(reasons_exist_for_every_status),
        cmocka_unit_test(
            missing_key_refused_for_agents_where_required_for_agents),
        cmocka_unit_test(missing_key_refused_for_everyone_where_required),
        cmocka_unit_test(optional_mode_keys_when_present_only),
        cmocka_unit_test(human_key_on_agent_route_is_honoured),
        cmocka_unit_test(invalid_key_is_refused_in_every_active_mode),
        cmocka_unit_test(keys_on_get_head_options_are_ignored),
        cmocka_unit_test(non_mutating_methods_and_mode_off_are_unkeyed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
