/*
 * Request fingerprints (src/core/fingerprint.c): the documented layout
 * against digests computed independently (Python hashlib over the layout
 * in fingerprint.h), every field counting, length prefixes keeping fields
 * apart, chunked feeding, and canonical JSON with its raw fallback.  The
 * T3 cases of ../shared/cases/idempotency.md (body, method, path, query)
 * are among them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/fingerprint.h"

#define S(x) (x), strlen(x)

static tr_fp_request
req(const char *method, const char *path, const char *query,
    const char *ctype)
{
    tr_fp_request r = {
        .method = method,
        .method_len = strlen(method),
        .path = path,
        .path_len = strlen(path),
        .query = query,
        .query_len = query ? strlen(query) : 0,
        .content_type = ctype,
        .content_type_len = ctype ? strlen(ctype) : 0,
    };
    return r;
}

static void
fp_of(const tr_fp_request *r, const char *body, bool canonical,
      uint8_t out[TR_FP_LEN])
{
    assert_int_equal(tr_fingerprint(r, body, strlen(body), canonical, out),
                     0);
}

static void
hex_of(const uint8_t fp[TR_FP_LEN], char out[65])
{
    tr_fp_hex(fp, out);
}

static void
layout_matches_independent_digest(void **state)
{
    tr_fp_request r = req("POST", "/v1/orders", "dry=1",
                          "Application/JSON ; charset=utf-8");
    uint8_t fp[TR_FP_LEN];
    char hex[65];

    fp_of(&r, "{\"sku\":\"x\",\"qty\":1}", false, fp);
    hex_of(fp, hex);
    assert_string_equal(hex, "3151e1fb4373d0cab314f2706917a723"
                             "1da3aa8e87844253e4db8469f782f8d7");
}

static void
canonical_layout_matches_independent_digest(void **state)
{
    tr_fp_request r = req("POST", "/v1/orders", NULL, "application/json");
    uint8_t fp[TR_FP_LEN];
    char hex[65];

    fp_of(&r, " { \"sku\" : \"x\",\n \"qty\": 1 } ", true, fp);
    hex_of(fp, hex);
    assert_string_equal(hex, "91d1d067b621e21fa9e5d6eefe9f4d6a"
                             "bfb20b849e5b1f16f3a466ad60a4affa");
}

static void
same_request_same_fingerprint(void **state)
{
    tr_fp_request r = req("POST", "/v1/orders", NULL, "application/json");
    uint8_t a[TR_FP_LEN], b[TR_FP_LEN];

    fp_of(&r, "{\"qty\":1}", false, a);
    fp_of(&r, "{\"qty\":1}", false, b);
    assert_memory_equal(a, b, TR_FP_LEN);
}

static void
every_field_changes_the_fingerprint(void **state)
{
    const char *body = "{\"qty\":1}";
    tr_fp_request base = req("POST", "/v1/orders", NULL, "application/json");
    tr_fp_request var[] = {
        req("PUT", "/v1/orders", NULL, "application/json"),
        req("POST", "/v1/refunds", NULL, "application/json"),
        req("POST", "/v1/orders", "dry=1", "application/json"),
        req("POST", "/v1/orders", NULL, "text/plain"),
    };
    uint8_t a[TR_FP_LEN], b[TR_FP_LEN];

    fp_of(&base, body, false, a);
    for (size_t i = 0; i < sizeof(var) / sizeof(var[0]); i++) {
        fp_of(&var[i], body, false, b);
        assert_memory_not_equal(a, b, TR_FP_LEN);
    }
    fp_of(&base, "{\"qty\":2}", false, b);
    assert_memory_not_equal(a, b, TR_FP_LEN);
    fp_of(&base, "", false, b);
    assert_memory_not_equal(a, b, TR_FP_LEN);
}

static void
length_prefixes_keep_fields_apart(void **state)
{
    tr_fp_request a = req("POST", "/v1/ab", "c", NULL);
    tr_fp_request b = req("POST", "/v1/a", "bc", NULL);
    tr_fp_request c = req("POST", "/v1/a", "b", "c");
    uint8_t x[TR_FP_LEN], y[TR_FP_LEN], z[TR_FP_LEN];

    fp_of(&a, "", false, x);
    fp_of(&b, "", false, y);
    fp_of(&c, "", false, z);
    assert_memory_not_equal(x, y, TR_FP_LEN);
    assert_memory_not_equal(y, z, TR_FP_LEN);

    /* Content type vs body: "text/plainX" + "" vs "text/plain" + "X". */
    a = req("POST", "/p", NULL, "text/plainX");
    b = req("POST", "/p", NULL, "text/plain");
    fp_of(&a, "", false, x);
    fp_of(&b, "X", false, y);
    assert_memory_not_equal(x, y, TR_FP_LEN);
}

static void
absent_query_and_type_hash_like_empty(void **state)
{
    tr_fp_request a = req("POST", "/p", NULL, NULL);
    tr_fp_request b = req("POST", "/p", "", "");
    uint8_t x[TR_FP_LEN], y[TR_FP_LEN];

    fp_of(&a, "b", false, x);
    fp_of(&b, "b", false, y);
    assert_memory_equal(x, y, TR_FP_LEN);
}

static void
media_type_case_is_ignored_but_parameters_count(void **state)
{
    tr_fp_request a = req("POST", "/p", NULL, "application/json");
    tr_fp_request b = req("POST", "/p", NULL, "  APPLICATION/Json ");
    tr_fp_request c = req("POST", "/p", NULL,
                          "multipart/form-data; boundary=AbC");
    tr_fp_request d = req("POST", "/p", NULL,
                          "Multipart/Form-Data; boundary=abc");
    uint8_t w[TR_FP_LEN], x[TR_FP_LEN], y[TR_FP_LEN], z[TR_FP_LEN];

    fp_of(&a, "{}", false, w);
    fp_of(&b, "{}", false, x);
    assert_memory_equal(w, x, TR_FP_LEN);
    fp_of(&c, "{}", false, y);
    fp_of(&d, "{}", false, z);
    assert_memory_not_equal(y, z, TR_FP_LEN);
}

static void
chunked_body_equals_one_shot(void **state)
{
    tr_fp_request r = req("PATCH", "/v1/x", "a=1", "application/json");
    const char *body = "{\"a\":[1,2,3],\"b\":\"some longer text\"}";
    size_t len = strlen(body);
    uint8_t one[TR_FP_LEN], parts[TR_FP_LEN];
    tr_fp_ctx fp;

    fp_of(&r, body, false, one);
    assert_int_equal(tr_fp_begin(&fp, &r), 0);
    for (size_t off = 0; off < len; off += 3) {
        size_t n = len - off < 3 ? len - off : 3;

        assert_int_equal(tr_fp_update(&fp, body + off, n), 0);
    }
    assert_int_equal(tr_fp_update(&fp, NULL, 0), 0);
    assert_int_equal(tr_fp_finish(&fp, parts), 0);
    assert_memory_equal(one, parts, TR_FP_LEN);
}

static void
canonical_json_ignores_key_order_and_spacing(void **state)
{
    tr_fp_request r = req("POST", "/v1/orders", NULL, "application/json");
    uint8_t a[TR_FP_LEN], b[TR_FP_LEN];

    fp_of(&r, "{\"sku\":\"x\",\"qty\":1,\"o\":{\"b\":1,\"a\":[2,1]}}",
          true, a);
    fp_of(&r, "{ \"o\" : {\"a\":[2, 1], \"b\":1},\n\"qty\":1, \"sku\":\"x\"}",
          true, b);
    assert_memory_equal(a, b, TR_FP_LEN);

    /* Raw mode sees the bytes, so the same two bodies differ. */
    fp_of(&r, "{\"sku\":\"x\",\"qty\":1,\"o\":{\"b\":1,\"a\":[2,1]}}",
          false, a);
    fp_of(&r, "{ \"o\" : {\"a\":[2, 1], \"b\":1},\n\"qty\":1, \"sku\":\"x\"}",
          false, b);
    assert_memory_not_equal(a, b, TR_FP_LEN);
}

static void
canonical_json_keeps_values_and_array_order(void **state)
{
    tr_fp_request r = req("POST", "/p", NULL, "application/json");
    uint8_t a[TR_FP_LEN], b[TR_FP_LEN];

    fp_of(&r, "{\"qty\":1}", true, a);
    fp_of(&r, "{\"qty\":2}", true, b);
    assert_memory_not_equal(a, b, TR_FP_LEN);
    fp_of(&r, "[1,2]", true, a);
    fp_of(&r, "[2,1]", true, b);
    assert_memory_not_equal(a, b, TR_FP_LEN);
    fp_of(&r, "{\"n\":1}", true, a);
    fp_of(&r, "{\"n\":1.0}", true, b);
    assert_memory_not_equal(a, b, TR_FP_LEN);
    fp_of(&r, "{\"n\":1.0}", true, a);
    fp_of(&r, "{\"n\":1.00}", true, b);
    assert_memory_equal(a, b, TR_FP_LEN);
    fp_of(&r, "{\"s\":\"\\u00e9\"}", true, a);
    fp_of(&r, "{\"s\":\"\xc3\xa9\"}", true, b);
    assert_memory_equal(a, b, TR_FP_LEN);
}

static void
non_json_body_falls_back_to_raw_bytes(void **state)
{
    tr_fp_request r = req("POST", "/p", NULL, "text/plain");
    const char *bodies[] = {
        "not json at all", "", "{\"a\":1", "{\"a\":1,\"a\":2}",
        "{\"a\":1} trailing", "\"\\u0000\"", "\xff\xfe",
        "123456789012345678901234567890",
    };
    uint8_t raw[TR_FP_LEN], canon[TR_FP_LEN];
    tr_fp_ctx fp;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        fp_of(&r, bodies[i], false, raw);
        fp_of(&r, bodies[i], true, canon);
        assert_memory_equal(raw, canon, TR_FP_LEN);

        assert_int_equal(tr_fp_begin(&fp, &r), 0);
        assert_int_equal(tr_fp_body_canonical(&fp, S(bodies[i])), 0);
        assert_int_equal(tr_fp_finish(&fp, canon), 0);
        assert_memory_equal(raw, canon, TR_FP_LEN);
    }
}

static void
canonical_and_raw_forms_of_json_differ(void **state)
{
    tr_fp_request r = req("POST", "/p", NULL, "application/json");
    uint8_t raw[TR_FP_LEN], canon[TR_FP_LEN];
    tr_fp_ctx fp;

    /* Already canonical text: the mode byte still keeps them apart. */
    fp_of(&r, "{\"a\":1}", false, raw);
    assert_int_equal(tr_fp_begin(&fp, &r), 0);
    assert_int_equal(tr_fp_body_canonical(&fp, S("{\"a\":1}")), 1);
    assert_int_equal(tr_fp_finish(&fp, canon), 0);
    assert_memory_not_equal(raw, canon, TR_FP_LEN);
}

static void
misuse_of_the_context_fails_cleanly(void **state)
{
    tr_fp_request r = req("POST", "/p", NULL, NULL);
    uint8_t out[TR_FP_LEN], zero[TR_FP_LEN] = { 0 };
    tr_fp_ctx fp;

    /* Canonical after raw bytes. */
    assert_int_equal(tr_fp_begin(&fp, &r), 0);
    assert_int_equal(tr_fp_update(&fp, S("x")), 0);
    assert_int_equal(tr_fp_body_canonical(&fp, S("{}")), -1);
    assert_int_equal(tr_fp_finish(&fp, out), -1);
    assert_memory_equal(out, zero, TR_FP_LEN);

    /* Raw bytes after canonical. */
    assert_int_equal(tr_fp_begin(&fp, &r), 0);
    assert_int_equal(tr_fp_body_canonical(&fp, S("{}")), 1);
    assert_int_equal(tr_fp_update(&fp, S("x")), -1);
    assert_int_equal(tr_fp_finish(&fp, out), -1);

    /* Finish twice; abort after finish. */
    assert_int_equal(tr_fp_begin(&fp, &r), 0);
    assert_int_equal(tr_fp_finish(&fp, out), 0);
    assert_int_equal(tr_fp_finish(&fp, out), -1);
    assert_int_equal(tr_fp_update(&fp, S("x")), -1);
    tr_fp_abort(&fp);
    tr_fp_abort(&fp);
}

static void
hex_is_lowercase_and_terminated(void **state)
{
    uint8_t fp[TR_FP_LEN];
    char hex[65];

    for (size_t i = 0; i < TR_FP_LEN; i++)
        fp[i] = (uint8_t)(i * 8 + 0x0a);
    memset(hex, 'Z', sizeof(hex));
    tr_fp_hex(fp, hex);
    assert_int_equal(strlen(hex), 64);
    assert_memory_equal(hex, "0a121a222a323a42", 16);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layout_matches_independent_digest),
        cmocka_unit_test(canonical_layout_matches_independent_digest),
        cmocka_unit_test(same_request_same_fingerprint),
        cmocka_unit_test(every_field_changes_the_fingerprint),
        cmocka_unit_test(length_prefixes_keep_fields_apart),
        cmocka_unit_test(absent_query_and_type_hash_like_empty),
        cmocka_unit_test(media_type_case_is_ignored_but_parameters_count),
        cmocka_unit_test(chunked_body_equals_one_shot),
        cmocka_unit_test(canonical_json_ignores_key_order_and_spacing),
        cmocka_unit_test(canonical_json_keeps_values_and_array_order),
        cmocka_unit_test(non_json_body_falls_back_to_raw_bytes),
        cmocka_unit_test(canonical_and_raw_forms_of_json_differ),
        cmocka_unit_test(misuse_of_the_context_fails_cleanly),
        cmocka_unit_test(hex_is_lowercase_and_terminated),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
