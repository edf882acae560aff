/*
 * treaty audit verify: the hash chain and the signed checkpoints, with
 * one exit code per finding (docs/audit.md "Verifying").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cmd_audit.h"
#include "core/audit_chain.h"
#include "core/rfc3339.h"
#include "store/audit_keys.h"
#include "store/audit_verify.h"

typedef unsigned long long ull;

static int
exit_code(tr_audit_finding f)
{
    switch (f) {
    case TR_AUDIT_INTACT:
        return TR_AUDIT_EXIT_OK;
    case TR_AUDIT_EDITED:
        return TR_AUDIT_EXIT_EDITED;
    case TR_AUDIT_DELETED:
        return TR_AUDIT_EXIT_DELETED;
    case TR_AUDIT_REORDERED:
        return TR_AUDIT_EXIT_REORDERED;
    case TR_AUDIT_INSERTED:
        return TR_AUDIT_EXIT_INSERTED;
    case TR_AUDIT_TRUNCATED:
        return TR_AUDIT_EXIT_TRUNCATED;
    case TR_AUDIT_ROLLED_BACK:
        return TR_AUDIT_EXIT_ROLLED_BACK;
    case TR_AUDIT_BAD_SIGNATURE:
        return TR_AUDIT_EXIT_BAD_SIGNATURE;
    case TR_AUDIT_FINDING__COUNT:
        break;
    }
    return TR_AUDIT_EXIT_ERROR;
}

static void
print_break(const tr_audit_verify_report *v)
{
    const tr_audit_break *b = &v->chain;
    ull seq = b->seq, n = b->count;

    printf("audit trail BROKEN: ");
    switch (b->finding) {
    case TR_AUDIT_EDITED:
        if (b->rehashed)
            printf("record %llu was edited and its hash recomputed: record "
                   "%llu no longer chains to it\n", seq, seq + 1);
        else
            printf("record %llu was edited: its fields do not match its "
                   "hash\n", seq);
        break;
    case TR_AUDIT_DELETED:
        if (v->first_seq > 1 && seq + n == v->first_seq && !v->checked)
            printf("records %llu..%llu are missing before the first record "
                   "%llu, and no signed anchor says retention removed "
                   "them\n", seq, seq + n - 1, (ull)v->first_seq);
        else if (b->renumbered)
            printf("%llu record(s) deleted at seq %llu and the records "
                   "after them renumbered (record %llu was written as "
                   "%llu)\n", n, seq, seq, seq + n);
        else
            printf("%llu record(s) deleted: seq %llu..%llu missing (record "
                   "%llu follows record %llu)\n", n, seq, seq + n - 1,
                   seq + n, seq - 1);
        break;
    case TR_AUDIT_REORDERED:
        printf("record %llu is out of order: records were moved or "
               "swapped there\n", seq);
        break;
    case TR_AUDIT_INSERTED:
        printf("%llu record(s) inserted at seq %llu, never written by "
               "treaty (record %llu and the ones after were "
               "renumbered)\n", n, seq, seq);
        break;
    default:
        printf("%s at record %llu\n", tr_audit_finding_name(b->finding),
               seq);
        break;
    }
    printf("last good record: %llu\n", (ull)v->last_good_seq);
}

static void
print_checkpoints(const tr_audit_verify_report *v, const char *file,
                  size_t n_keys)
{
    const tr_audit_checkpoint *cp = &v->good_cp;
    char t[32] = "";

    printf("checkpoints: %zu in the database", v->db_checkpoints);
    if (file)
        printf(", %zu in %s", v->ext_checkpoints, file);
    printf(" with a good signature\n");
    if (v->bad_signatures) {
        printf("checkpoints with a BAD signature: %zu (first: ",
               v->bad_signatures);
        if (v->first_bad_seq)
            printf("seq %llu ", (ull)v->first_bad_seq);
        printf("in %s: %s)\n",
               v->first_bad_external ? file : "the database",
               tr_audit_cp_strerror(v->first_bad_status));
        if (n_keys == 0)
            printf("no key to check signatures with: give --key PEM or "
                   "-c with the gateway's configuration\n");
    }
    if (!v->has_good_cp) {
        printf("last good checkpoint: none\n");
        return;
    }
    if (tr_rfc3339_format(cp->time_ms, t, sizeof(t)) != 0)
        t[0] = '\0';
    printf("last good checkpoint: seq %llu (%s, %s, kid %s)%s\n",
           (ull)cp->seq, tr_audit_cp_kind_name(cp->kind), t, cp->kid,
           v->good_cp_external ? ", also in the external file" : "");
}

static void
print_history(const tr_audit_verify_report *v, const char *file)
{
    ull seq = v->history_seq, last = v->last_good_seq;
    const char *where = v->history_external ? file : "the database";

    if (v->history == TR_AUDIT_TRUNCATED)
        printf("TRUNCATED: the trail ends at record %llu, but the "
               "database's own checkpoint covers record %llu: the newest "
               "records were deleted\n", last, seq);
    else if (v->history == TR_AUDIT_ROLLED_BACK && seq > last &&
             v->chain.finding == TR_AUDIT_INTACT)
        printf("ROLLED BACK: the trail ends at record %llu, but a "
               "checkpoint signed in %s covers record %llu: this is an "
               "older copy of the database (or one truncated together "
               "with its checkpoints)\n", last, where, seq);
    else if (v->history == TR_AUDIT_ROLLED_BACK)
        printf("ROLLED BACK: record %llu is not the one signed in %s: "
               "the database was replaced by another copy and written on "
               "(or rewritten)\n", seq, where);
}

int
tr_audit_cli_verify(const tr_audit_cli_opts *o, const tr_audit_cli_where *w)
{
    tr_gateway_keys keys;
    tr_audit_checkpoint *ext = NULL;
    tr_audit_verify_opts vo;
    tr_audit_verify_report v;
    tr_audit_reader *r;
    tr_audit_finding verdict;
    char err[512], hex[65];
    int rc;

    memset(&vo, 0, sizeof(vo));
    if (tr_audit_keys_load_trusted(o->key_file, w->state_dir,
                                   w->signing_key_file[0]
                                       ? w->signing_key_file : NULL,
                                   (int64_t)time(NULL), &keys, err,
                                   sizeof(err)) != 0) {
        fprintf(stderr, "treaty audit: %s\n", err);
        return TR_AUDIT_EXIT_ERROR;
    }
    if (o->checkpoint_file &&
        tr_audit_checkpoints_read(o->checkpoint_file, &ext, &vo.n_external,
                                  &vo.external_malformed, err,
                                  sizeof(err)) != 0) {
        fprintf(stderr, "treaty audit: %s\n", err);
        tr_gateway_keys_free(&keys);
        return TR_AUDIT_EXIT_ERROR;
    }
    vo.external = ext;
    vo.keys = keys.keys;
    vo.n_keys = keys.n;
    r = tr_audit_reader_open(w->db, err, sizeof(err));
    rc = r ? tr_audit_verify(r, &vo, &v, err, sizeof(err)) : -1;
    tr_audit_reader_close(r);
    free(ext);
    if (rc != 0) {
        fprintf(stderr, "treaty audit: %s\n", err);
        tr_gateway_keys_free(&keys);
        return TR_AUDIT_EXIT_ERROR;
    }

    verdict = tr_audit_verify_verdict(&v);
    if (v.anchored)
        printf("trail starts after the signed anchor at seq %llu (older "
               "records removed by retention)\n", (ull)v.start_seq);
    if (v.chain.finding == TR_AUDIT_INTACT) {
        tr_audit_hex(v.last_good_hash, 32, hex);
        printf("audit trail intact: %llu records, last seq %llu, hash %s\n",
               (ull)v.records, (ull)v.last_good_seq,
               v.last_good_seq ? hex : "-");
    } else {
        print_break(&v);
    }
    print_checkpoints(&v, o->checkpoint_file, keys.n);
    print_history(&v, o->checkpoint_file);
    if (verdict == TR_AUDIT_INTACT && v.uncovered)
        printf("%llu record(s) after the last checkpoint are protected by "
               "the chain alone\n", (ull)v.uncovered);
    if (verdict == TR_AUDIT_INTACT && !o->checkpoint_file)
        printf("(without --checkpoint FILE, an older copy of the whole "
               "database cannot be told from the current one)\n");
    printf("result: %s\n", tr_audit_finding_name(verdict));
    tr_gateway_keys_free(&keys);
    return exit_code(verdict);
}
