/*
 * The idempotency store (src/store/idem_store.c) with a real SQLite file
 * in a temporary state_dir and a real libuv loop: claims won and lost
 * (also two in one batch), the owner-id rule on renew, complete and
 * release, byte-exact stored responses, the storage cap, expiry and the
 * reaper against core's tr_idem_expired(), re-execution after a dead
 * lease, persistence across a reopen, and the store-unavailable path
 * (a file size limit makes the disk "full", lifting it brings it back).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <uv.h>

#include "store/idem_store.h"

#define T0 1700000000000LL

static const uint8_t OWNER_A[TR_IDEM_OWNER_LEN] = { 0xa1, 9, 8, 7 };
static const uint8_t OWNER_B[TR_IDEM_OWNER_LEN] = { 0xb2, 9, 8, 7 };
static const char SCOPE_A1[] = "corp\0A1";
static const char SCOPE_A2[] = "corp\0A2";

typedef struct {
    uv_loop_t loop;
    char dir[64];
    tr_idem_store *s;
} fixture;

/* One callback's results. */
typedef struct {
    int calls;
    int status;
    bool ok;
    size_t deleted;
    tr_idem_stored *rec;
} result;

static tr_idem_cfg
cfg_default(void)
{
    tr_idem_cfg c;

    memset(&c, 0, sizeof(c));
    c.mode = TR_IDEM_REQUIRED;
    c.ttl_s = 86400;
    c.storage_cap = 4096;
    return c;
}

static tr_idem_key
key_of(const char *k)
{
    tr_idem_key key;

    assert_int_equal(tr_idem_key_parse(k, strlen(k), 1, &key),
                     TR_IDEM_KEY_OK);
    return key;
}

static void
fp_fill(uint8_t fp[TR_FP_LEN], uint8_t v)
{
    memset(fp, v, TR_FP_LEN);
}

static void
open_store(fixture *f)
{
    tr_idem_store_opts o = { .no_reaper = true };
    char err[256] = "";

    f->s = tr_idem_store_open(&f->loop, f->dir, &o, err, sizeof(err));
    if (f->s == NULL)
        fail_msg("open: %s", err);
}

static void
close_store(fixture *f)
{
    tr_idem_store_close(f->s);
    f->s = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/treaty-idem-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    open_store(f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    char path[128];
    const char *files[] = { "idempotency.db", "idempotency.db-wal",
                            "idempotency.db-shm" };

    close_store(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void
on_guard(uv_timer_t *t)
{
    (void)t;                   /* expiry alone ends the wait */
}

/* Runs the loop until `r` saw `n` callbacks; fails after ~5 s. */
static void
wait_for(fixture *f, result *r, int n)
{
    uv_timer_t guard;
    int spins = 0;

    uv_timer_init(&f->loop, &guard);
    assert_int_equal(uv_timer_start(&guard, on_guard, 5000, 0), 0);
    while (r->calls < n && uv_is_active((uv_handle_t *)&guard) &&
           spins++ < 100000)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(r->calls, n);
}

static void
on_lookup(void *arg, int status, tr_idem_stored *found)
{
    result *r = arg;

    r->calls++;
    r->status = status;
    tr_idem_stored_free(r->rec);
    r->rec = found;
}

static void
on_claim(void *arg, int status, bool won, tr_idem_stored *rec)
{
    result *r = arg;

    r->calls++;
    r->status = status;
    r->ok = won;
    tr_idem_stored_free(r->rec);
    r->rec = rec;
}

static void
on_done(void *arg, int status, bool ok)
{
    result *r = arg;

    r->calls++;
    r->status = status;
    r->ok = ok;
}

static void
on_reap(void *arg, int status, size_t deleted)
{
    result *r = arg;

    r->calls++;
    r->status = status;
    r->deleted = deleted;
}

static void
drop(result *r)
{
    tr_idem_stored_free(r->rec);
    memset(r, 0, sizeof(*r));
}

/* Synchronous wrappers over the asynchronous API. */

static tr_idem_stored *
lookup(fixture *f, const char *scope, size_t slen, const char *k)
{
    tr_idem_key key = key_of(k);
    result r = { 0 };

    assert_int_equal(tr_idem_store_lookup(f->s, scope, slen, &key,
                                          on_lookup, &r), 0);
    wait_for(f, &r, 1);
    assert_int_equal(r.status, 0);
    return r.rec;
}

static bool
claim(fixture *f, const char *k, uint8_t fpv, const uint8_t *owner,
      const tr_idem_cfg *c, int64_t now, tr_idem_stored **rec)
{
    tr_idem_key key = key_of(k);
    uint8_t fp[TR_FP_LEN];
    result r = { 0 };

    fp_fill(fp, fpv);
    assert_int_equal(tr_idem_store_claim(f->s, SCOPE_A1, sizeof(SCOPE_A1),
                                         &key, fp, owner, 3000, c, now,
                                         on_claim, &r), 0);
    wait_for(f, &r, 1);
    assert_int_equal(r.status, 0);
    assert_non_null(r.rec);
    if (rec != NULL)
        *rec = r.rec;
    else
        tr_idem_stored_free(r.rec);
    return r.ok;
}

static bool
complete(fixture *f, const char *k, const uint8_t *owner,
         const tr_idem_result *res, const tr_idem_cfg *c, int64_t now)
{
    tr_idem_key key = key_of(k);
    result r = { 0 };

    assert_int_equal(tr_idem_store_complete(f->s, SCOPE_A1,
                                            sizeof(SCOPE_A1), &key, owner,
                                            res, c, now, on_done, &r), 0);
    wait_for(f, &r, 1);
    assert_int_equal(r.status, 0);
    return r.ok;
}

static tr_idem_result
result_of(int status, const char *body)
{
    tr_idem_result res;

    memset(&res, 0, sizeof(res));
    res.status = status;
    res.body = (const uint8_t *)body;
    res.body_len = strlen(body);
    return res;
}

/* ---- tests ---- */

static void
open_creates_private_file_with_schema(void **state)
{
    fixture *f = *state;
    char path[128];
    struct stat st;
    sqlite3 *db;
    sqlite3_stmt *q;

    assert_true(tr_idem_db_path(f->dir, path, sizeof(path)));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_true(tr_idem_store_available(f->s));

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q,
                                        NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 1);
    sqlite3_finalize(q);
    sqlite3_close(db);
    assert_false(tr_idem_db_path(f->dir, path, 10));
}

static void
lookup_of_unknown_key_finds_nothing(void **state)
{
    fixture *f = *state;

    assert_null(lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "k-none"));
}

static void
first_claim_wins_and_is_visible(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_stored *rec = NULL, *found;
    uint8_t fp[TR_FP_LEN];

    assert_true(claim(f, "k-1", 1, OWNER_A, &c, T0, &rec));
    assert_int_equal(rec->rec.state, TR_IDEM_REC_IN_FLIGHT);
    assert_memory_equal(rec->rec.owner, OWNER_A, TR_IDEM_OWNER_LEN);
    tr_idem_stored_free(rec);

    found = lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "k-1");
    assert_non_null(found);
    fp_fill(fp, 1);
    assert_int_equal(found->rec.state, TR_IDEM_REC_IN_FLIGHT);
    assert_memory_equal(found->rec.fingerprint, fp, TR_FP_LEN);
    assert_memory_equal(found->rec.owner, OWNER_A, TR_IDEM_OWNER_LEN);
    assert_int_equal(found->rec.created_ms, T0);
    assert_int_equal(found->rec.lease_until_ms, T0 + 3000);
    assert_int_equal(found->rec.expires_ms, T0 + 86400LL * 1000);
    assert_int_equal(tr_idem_lookup(&found->rec, fp, &c, 0, T0 + 300)
                         .verdict,
                     TR_IDEM_IN_FLIGHT);
    tr_idem_stored_free(found);
}

static void
lost_claim_returns_the_winners_record(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_stored *rec = NULL;
    uint8_t fp[TR_FP_LEN];

    assert_true(claim(f, "k-2", 2, OWNER_A, &c, T0, NULL));
    assert_false(claim(f, "k-2", 2, OWNER_B, &c, T0 + 300, &rec));
    assert_memory_equal(rec->rec.owner, OWNER_A, TR_IDEM_OWNER_LEN);
    fp_fill(fp, 2);
    assert_int_equal(tr_idem_lookup(&rec->rec, fp, &c, 0, T0 + 300)
                         .verdict,
                     TR_IDEM_IN_FLIGHT);
    /* A different request that loses the race is told it mismatched. */
    fp_fill(fp, 9);
    assert_int_equal(tr_idem_lookup(&rec->rec, fp, &c, 0, T0 + 300)
                         .verdict,
                     TR_IDEM_MISMATCH);
    tr_idem_stored_free(rec);
}

static void
racing_claims_in_one_batch_have_one_winner(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_key key = key_of("k-race");
    uint8_t fp[TR_FP_LEN], owner[8][TR_IDEM_OWNER_LEN];
    result r[8];
    int winners = 0, total = 0;

    fp_fill(fp, 3);
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 8; i++) {
        memset(owner[i], i + 1, TR_IDEM_OWNER_LEN);
        assert_int_equal(tr_idem_store_claim(f->s, SCOPE_A1,
                                             sizeof(SCOPE_A1), &key, fp,
                                             owner[i], 3000, &c, T0,
                                             on_claim, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        wait_for(f, &r[i], 1);
        assert_int_equal(r[i].status, 0);
        winners += r[i].ok;
        total++;
    }
    assert_int_equal(total, 8);
    assert_int_equal(winners, 1);
    for (int i = 0; i < 8; i++) {
        /* Every loser sees the one winner's owner id. */
        for (int w = 0; w < 8; w++) {
            if (r[w].ok)
                assert_memory_equal(r[i].rec->rec.owner, owner[w],
                                    TR_IDEM_OWNER_LEN);
        }
        drop(&r[i]);
    }
}

static void
scopes_keep_principals_apart(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_key key = key_of("k-6");
    uint8_t fp[TR_FP_LEN];
    result r = { 0 };

    fp_fill(fp, 6);
    assert_true(claim(f, "k-6", 6, OWNER_A, &c, T0, NULL));
    assert_int_equal(tr_idem_store_claim(f->s, SCOPE_A2, sizeof(SCOPE_A2),
                                         &key, fp, OWNER_B, 3000, &c, T0,
                                         on_claim, &r), 0);
    wait_for(f, &r, 1);
    assert_true(r.ok);
    drop(&r);
    assert_null(lookup(f, "corp\0A3", 8, "k-6"));
}

static void
completed_outcome_is_stored_byte_exact(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_header h[] = {
        { "Location", 8, "/v1/orders/9", 12 },
        { "Set-Cookie", 10, "s=1", 3 },
        { "Content-Type", 12, "application/json", 16 },
    };
    static const char body[] = "{\"id\":9,\"bin\":\"\x01\x02\xff\"}";
    uint8_t hbuf[128], fp[TR_FP_LEN];
    tr_idem_result res = result_of(201, "");
    tr_idem_stored *found;
    tr_header out;
    size_t off = 0;

    assert_true(claim(f, "k-t1", 1, OWNER_A, &c, T0, NULL));
    res.headers = hbuf;
    res.headers_len = tr_idem_headers_encode(h, 3, hbuf, sizeof(hbuf));
    res.body = (const uint8_t *)body;
    res.body_len = sizeof(body);           /* the NUL too: binary safe */
    assert_true(complete(f, "k-t1", OWNER_A, &res, &c, T0 + 500));

    found = lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "k-t1");
    assert_non_null(found);
    assert_int_equal(found->rec.state, TR_IDEM_REC_COMPLETED);
    assert_int_equal(found->rec.status, 201);
    assert_true(found->rec.replayable);
    assert_int_equal(found->rec.expires_ms, T0 + 500 + 86400LL * 1000);
    assert_int_equal(found->rec.body_len, sizeof(body));
    assert_memory_equal(found->rec.body, body, sizeof(body));
    assert_int_equal(tr_idem_headers_next(found->rec.headers,
                                          found->rec.headers_len, &off,
                                          &out), 1);
    assert_memory_equal(out.value, "/v1/orders/9", 12);
    assert_int_equal(tr_idem_headers_next(found->rec.headers,
                                          found->rec.headers_len, &off,
                                          &out), 1);
    assert_memory_equal(out.name, "Content-Type", 12);
    assert_int_equal(tr_idem_headers_next(found->rec.headers,
                                          found->rec.headers_len, &off,
                                          &out), 0);
    fp_fill(fp, 1);
    assert_int_equal(tr_idem_lookup(&found->rec, fp, &c, 0, T0 + 1500)
                         .verdict,
                     TR_IDEM_REPLAY);
    tr_idem_stored_free(found);
}

static void
empty_body_replays_as_empty_not_missing(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_result res = result_of(204, "");
    tr_idem_stored *found;

    assert_true(claim(f, "k-204", 1, OWNER_A, &c, T0, NULL));
    assert_true(complete(f, "k-204", OWNER_A, &res, &c, T0 + 10));
    found = lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "k-204");
    assert_true(found->rec.replayable);
    assert_non_null(found->rec.body);
    assert_int_equal(found->rec.body_len, 0);
    tr_idem_stored_free(found);
}

static void
wrong_owner_cannot_complete_renew_or_release(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_key key = key_of("k-own");
    tr_idem_result res = result_of(201, "stolen");
    tr_idem_stored *found;
    result r = { 0 };

    assert_true(claim(f, "k-own", 1, OWNER_A, &c, T0, NULL));
    assert_false(complete(f, "k-own", OWNER_B, &res, &c, T0 + 100));

    assert_int_equal(tr_idem_store_renew(f->s, SCOPE_A1, sizeof(SCOPE_A1),
                                         &key, OWNER_B, 9000, T0 + 100,
                                         on_done, &r), 0);
    wait_for(f, &r, 1);
    assert_false(r.ok);
    assert_int_equal(tr_idem_store_release(f->s, SCOPE_A1,
                                           sizeof(SCOPE_A1), &key,
                                           OWNER_B, on_done, &r), 0);
    wait_for(f, &r, 2);
    assert_false(r.ok);

    found = lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "k-own");
    assert_int_equal(found->rec.state, TR_IDEM_REC_IN_FLIGHT);
    assert_int_equal(found->rec.lease_until_ms, T0 + 3000);
    assert_memory_equal(found->rec.owner, OWNER_A, TR_IDEM_OWNER_LEN);
    tr_idem_stored_free(found);
}

static void
renewal_moves_the_lease(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_key key = key_of("k-renew");
    tr_idem_stored *found;
    result r = { 0 };

    assert_true(claim(f, "k-renew", 1, OWNER_A, &c, T0, NULL));
    assert_int_equal(tr_idem_store_renew(f->s, SCOPE_A1, sizeof(SCOPE_A1),
                                         &key, OWNER_A, 3000, T0 + 2000,
                                         on_done, &r), 0);
    wait_for(f, &r, 1);
    assert_true(r.ok);
    found = lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "k-renew");
    assert_int_equal(found->rec.lease_until_ms, T0 + 5000);
    tr_idem_stored_free(found);
    /* Renewal of a key nobody holds: refused, not an error. */
    key = key_of("k-nobody");
    assert_int_equal(tr_idem_store_renew(f->s, SCOPE_A1, sizeof(SCOPE_A1),
                                         &key, OWNER_A, 3000, T0, on_done,
                                         &r), 0);
    wait_for(f, &r, 2);
    assert_int_equal(r.status, 0);
    assert_false(r.ok);
}

static void
over_cap_outcome_keeps_status_only(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_result res = result_of(201, "");
    tr_idem_stored *found;
    uint8_t *big = malloc(c.storage_cap + 1);
    uint8_t fp[TR_FP_LEN];
    tr_idem_decision d;

    assert_non_null(big);
    memset(big, 'b', c.storage_cap + 1);
    res.body = big;
    res.body_len = c.storage_cap + 1;
    assert_true(claim(f, "k-big", 1, OWNER_A, &c, T0, NULL));
    assert_true(complete(f, "k-big", OWNER_A, &res, &c, T0 + 100));
    free(big);

    found = lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "k-big");
    assert_int_equal(found->rec.state, TR_IDEM_REC_COMPLETED);
    assert_false(found->rec.replayable);
    assert_null(found->rec.body);
    assert_int_equal(found->rec.body_len, 0);
    fp_fill(fp, 1);
    d = tr_idem_lookup(&found->rec, fp, &c, 0, T0 + 200);
    assert_int_equal(d.verdict, TR_IDEM_NOT_REPLAYABLE);
    assert_int_equal(d.status, 201);
    tr_idem_stored_free(found);
}

static void
release_frees_the_key_for_a_true_retry(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_key key = key_of("k-rel");
    result r = { 0 };

    assert_true(claim(f, "k-rel", 1, OWNER_A, &c, T0, NULL));
    assert_int_equal(tr_idem_store_release(f->s, SCOPE_A1,
                                           sizeof(SCOPE_A1), &key,
                                           OWNER_A, on_done, &r), 0);
    wait_for(f, &r, 1);
    assert_true(r.ok);
    assert_null(lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "k-rel"));
    assert_true(claim(f, "k-rel", 1, OWNER_B, &c, T0 + 100, NULL));
}

static void
dead_lease_is_unknown_unless_route_reexecutes(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_stored *rec = NULL;
    tr_idem_result late = result_of(201, "late");
    uint8_t fp[TR_FP_LEN];

    fp_fill(fp, 1);
    assert_true(claim(f, "k-crash", 1, OWNER_A, &c, T0, NULL));
    /* After the lease: the claim is lost and the record reads unknown. */
    assert_false(claim(f, "k-crash", 1, OWNER_B, &c, T0 + 4000, &rec));
    assert_int_equal(tr_idem_lookup(&rec->rec, fp, &c, 0, T0 + 4000)
                         .verdict,
                     TR_IDEM_OUTCOME_UNKNOWN);
    tr_idem_stored_free(rec);

    /* Re-execute: the dead claim is taken over, not by another request. */
    c.after_crash = TR_CRASH_REEXECUTE;
    assert_false(claim(f, "k-crash", 2, OWNER_B, &c, T0 + 4000, NULL));
    assert_true(claim(f, "k-crash", 1, OWNER_B, &c, T0 + 4000, NULL));
    /* The old owner's late outcome is refused. */
    assert_false(complete(f, "k-crash", OWNER_A, &late, &c, T0 + 4100));
}

static void
expired_record_is_replaced_by_a_new_claim(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_result res = result_of(201, "old");
    tr_idem_stored *rec = NULL;

    c.ttl_s = 5;
    assert_true(claim(f, "k-ttl", 1, OWNER_A, &c, T0, NULL));
    assert_true(complete(f, "k-ttl", OWNER_A, &res, &c, T0 + 1000));
    assert_false(claim(f, "k-ttl", 1, OWNER_B, &c, T0 + 5999, NULL));
    /* Past the TTL even a different request takes the key. */
    assert_true(claim(f, "k-ttl", 7, OWNER_B, &c, T0 + 6000, &rec));
    assert_int_equal(rec->rec.state, TR_IDEM_REC_IN_FLIGHT);
    tr_idem_stored_free(rec);
}

static void
reaper_deletes_exactly_the_expired_rows_in_bounded_batches(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_result res = result_of(200, "x");
    const char *keys[] = { "r-1", "r-2", "r-3", "r-4", "r-5", "r-live" };
    const int64_t now = T0 + 10000;
    result r = { 0 };
    int kept = 0;

    c.ttl_s = 1;
    /* r-1..r-5 complete at T0 and expire at T0 + 1 s. */
    for (int i = 0; i < 5; i++) {
        assert_true(claim(f, keys[i], 1, OWNER_A, &c, T0, NULL));
        assert_true(complete(f, keys[i], OWNER_A, &res, &c, T0));
    }
    /* r-live: TTL over at now, but its lease (claimed at now - 1 s)
     * still runs. */
    assert_true(claim(f, "r-live", 1, OWNER_A, &c, now - 1000, NULL));

    assert_int_equal(tr_idem_store_reap(f->s, now, 2, on_reap, &r), 0);
    wait_for(f, &r, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.deleted, 2);
    assert_int_equal(tr_idem_store_reap(f->s, now, 100, on_reap, &r), 0);
    wait_for(f, &r, 2);
    assert_int_equal(r.deleted, 3);
    assert_int_equal(tr_idem_store_reap(f->s, now, 100, on_reap, &r), 0);
    wait_for(f, &r, 3);
    assert_int_equal(r.deleted, 0);

    /* What is left is what core calls live. */
    for (size_t i = 0; i < 6; i++) {
        tr_idem_stored *x = lookup(f, SCOPE_A1, sizeof(SCOPE_A1), keys[i]);

        if (x != NULL) {
            assert_false(tr_idem_expired(&x->rec, now));
            kept++;
        }
        tr_idem_stored_free(x);
    }
    assert_int_equal(kept, 1);
}

static void
records_survive_a_reopen(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_result res = result_of(201, "persisted");
    tr_idem_stored *found;

    assert_true(claim(f, "k-persist", 1, OWNER_A, &c, T0, NULL));
    assert_true(complete(f, "k-persist", OWNER_A, &res, &c, T0 + 10));
    assert_true(claim(f, "k-inflight", 1, OWNER_A, &c, T0, NULL));
    close_store(f);
    open_store(f);

    found = lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "k-persist");
    assert_non_null(found);
    assert_int_equal(found->rec.status, 201);
    assert_memory_equal(found->rec.body, "persisted", 9);
    tr_idem_stored_free(found);
    found = lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "k-inflight");
    assert_non_null(found);
    assert_int_equal(found->rec.state, TR_IDEM_REC_IN_FLIGHT);
    tr_idem_stored_free(found);
}

static void
reaper_timer_runs_on_its_own(void **state)
{
    fixture *f = *state;
    tr_idem_store_opts o = { .reap_every_ms = 20, .reap_batch = 1 };
    tr_idem_cfg c = cfg_default();
    tr_idem_store_stats st;
    char err[256];
    uv_timer_t t;

    /* Two rows long expired (wall clock is far past T0 + 1 s). */
    c.ttl_s = 1;
    assert_true(claim(f, "old-1", 1, OWNER_A, &c, T0, NULL));
    assert_true(claim(f, "old-2", 1, OWNER_A, &c, T0, NULL));
    close_store(f);
    f->s = tr_idem_store_open(&f->loop, f->dir, &o, err, sizeof(err));
    assert_non_null(f->s);

    uv_timer_init(&f->loop, &t);
    assert_int_equal(uv_timer_start(&t, on_guard, 500, 0), 0);
    while (uv_is_active((uv_handle_t *)&t)) {
        tr_idem_store_get_stats(f->s, &st);
        if (st.reaped >= 2)
            break;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    tr_idem_store_get_stats(f->s, &st);
    assert_int_equal(st.reaped, 2);
    assert_null(lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "old-1"));
}

static void
stats_count_each_kind_of_answer(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_result res = result_of(201, "x");
    tr_idem_store_stats st;

    assert_true(claim(f, "k-s", 1, OWNER_A, &c, T0, NULL));
    assert_false(claim(f, "k-s", 1, OWNER_B, &c, T0, NULL));
    assert_false(complete(f, "k-s", OWNER_B, &res, &c, T0));
    assert_true(complete(f, "k-s", OWNER_A, &res, &c, T0));
    tr_idem_stored_free(lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "k-s"));
    tr_idem_store_get_stats(f->s, &st);
    assert_int_equal(st.claims_won, 1);
    assert_int_equal(st.claims_lost, 1);
    assert_int_equal(st.completions, 1);
    assert_int_equal(st.completions_refused, 1);
    assert_int_equal(st.lookups, 1);
    assert_int_equal(st.failures, 0);
    assert_true(st.available);
}

static void
full_disk_makes_the_store_unavailable_then_it_recovers(void **state)
{
    fixture *f = *state;
    tr_idem_cfg c = cfg_default();
    tr_idem_key key = key_of("k-full");
    tr_idem_result res = result_of(201, "");
    struct rlimit old, lim;
    uint8_t fp[TR_FP_LEN];
    uint8_t *body;
    result done = { 0 }, r = { 0 };
    int rc;

    c.storage_cap = 512 * 1024;
    assert_true(claim(f, "k-full", 1, OWNER_A, &c, T0, NULL));

    /* Files may not grow past 64 KiB from now on: the big outcome cannot
     * be written.  SIGXFSZ would kill us; ignore it so write() fails. */
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

    body = malloc(256 * 1024);
    assert_non_null(body);
    memset(body, 'z', 256 * 1024);
    res.body = body;
    res.body_len = 256 * 1024;
    assert_int_equal(tr_idem_store_complete(f->s, SCOPE_A1,
                                            sizeof(SCOPE_A1), &key,
                                            OWNER_A, &res, &c, T0 + 10,
                                            on_done, &done), 0);
    free(body);                  /* copied at the call */

    /* Wait until the failed batch has made the store unavailable. */
    {
        uv_timer_t t;

        uv_timer_init(&f->loop, &t);
        assert_int_equal(uv_timer_start(&t, on_guard, 3000, 0), 0);
        while (tr_idem_store_available(f->s) &&
               uv_is_active((uv_handle_t *)&t)) {
            uv_run(&f->loop, UV_RUN_NOWAIT);
            usleep(1000);
        }
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&f->loop, UV_RUN_NOWAIT);   /* t lives on this stack */
    }
    assert_false(tr_idem_store_available(f->s));
    assert_int_equal(done.calls, 0);      /* held for retry, not failed */

    /* Lookups and claims fail fast: the caller answers 503 or fails
     * open, per tr_idem_store_down_refuses(). */
    fp_fill(fp, 1);
    rc = tr_idem_store_lookup(f->s, SCOPE_A1, sizeof(SCOPE_A1), &key,
                              on_lookup, &r);
    assert_int_equal(rc, TR_STORE_EUNAVAILABLE);
    rc = tr_idem_store_claim(f->s, SCOPE_A1, sizeof(SCOPE_A1), &key, fp,
                             OWNER_B, 3000, &c, T0, on_claim, &r);
    assert_int_equal(rc, TR_STORE_EUNAVAILABLE);
    assert_true(tr_idem_store_down_refuses(&c));

    /* Space comes back: the held completion commits, the store is up. */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    wait_for(f, &done, 1);
    assert_int_equal(done.status, 0);
    assert_true(done.ok);
    assert_true(tr_idem_store_available(f->s));
    r.rec = lookup(f, SCOPE_A1, sizeof(SCOPE_A1), "k-full");
    assert_non_null(r.rec);
    assert_int_equal(r.rec->rec.body_len, 256 * 1024);
    drop(&r);
    signal(SIGXFSZ, SIG_DFL);
}

static void
open_fails_cleanly_on_a_missing_directory(void **state)
{
    fixture *f = *state;
    char err[256] = "";
    tr_idem_store *s;

    s = tr_idem_store_open(&f->loop, "/nonexistent/treaty/dir", NULL, err,
                           sizeof(err));
    assert_null(s);
    assert_true(strlen(err) > 0);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(open_creates_private_file_with_schema),
        T(lookup_of_unknown_key_finds_nothing),
        T(first_claim_wins_and_is_visible),
        T(lost_claim_returns_the_winners_record),
        T(racing_claims_in_one_batch_have_one_winner),
        T(scopes_keep_principals_apart),
        T(completed_outcome_is_stored_byte_exact),
        T(empty_body_replays_as_empty_not_missing),
        T(wrong_owner_cannot_complete_renew_or_release),
        T(renewal_moves_the_lease),
        T(over_cap_outcome_keeps_status_only),
        T(release_frees_the_key_for_a_true_retry),
        T(dead_lease_is_unknown_unless_route_reexecutes),
        T(expired_record_is_replaced_by_a_new_claim),
        T(reaper_deletes_exactly_the_expired_rows_in_bounded_batches),
        T(records_survive_a_reopen),
        T(reaper_timer_runs_on_its_own),
        T(stats_count_each_kind_of_answer),
        T(full_disk_makes_the_store_unavailable_then_it_recovers),
        T(open_fails_cleanly_on_a_missing_directory),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
