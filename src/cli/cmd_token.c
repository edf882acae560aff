/*
 * treaty token mint: a signed ES256 access token for development, made
 * with the published keys under examples/dev-keys (which `treaty serve`
 * accepts only with --dev).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "cli/commands.h"
#include "config/keys_load.h"
#include "core/b64url.h"
#include "core/jwks.h"

#define DEFAULT_DIR "examples/dev-keys"
#define DEFAULT_ISSUER "https://dev.treaty.example/"
#define DEFAULT_AUD "treaty-dev"
#define DEFAULT_TTL 3600
#define MAX_TTL (366L * 24 * 3600)

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: treaty token mint --sub S [options]\n\n"
            "Prints an ES256 access token signed with a development key.\n\n"
            "  --sub S             subject: the principal (required)\n"
            "  --act A[,B...]      delegation chain, current actor first:\n"
            "                      A acts now, through B, ... (nested act)\n"
            "  --scope \"a b\"       scope claim (space-separated)\n"
            "  --client C          client_id claim\n"
            "  --ttl SECONDS       lifetime (default %d)\n"
            "  --dev-keys DIR      es256.pem and jwks.json (default %s)\n"
            "  --issuer URL        iss (default %s)\n"
            "  --aud AUD           aud, repeat for several (default %s)\n"
            "  --typ TYP           header typ (default at+jwt)\n"
            "  --claim K=V         extra string claim (repeatable)\n"
            "  --claim-json K=JSON extra claim of any JSON type; also\n"
            "                      overrides iat, exp, ... (repeatable)\n",
            DEFAULT_TTL, DEFAULT_DIR, DEFAULT_ISSUER, DEFAULT_AUD);
}

/* The development key pair: private key from es256.pem, its kid from the
 * jwks.json beside it (the key whose public half matches). */
static EVP_PKEY *
load_key(const char *dir, char *kid, size_t kid_cap)
{
    char path[4096], err[512], group[64];
    FILE *f;
    EVP_PKEY *pkey;
    tr_keyset *ks;
    const tr_jwk *match = NULL;

    snprintf(path, sizeof(path), "%s/es256.pem", dir);
    f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "treaty token: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!pkey || !EVP_PKEY_is_a(pkey, "EC") ||
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
                                       group, sizeof(group), NULL) != 1 ||
        (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
        fprintf(stderr, "treaty token: %s: not a P-256 private key\n", path);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    snprintf(path, sizeof(path), "%s/jwks.json", dir);
    ks = tr_keys_load_jwks_file(path, err, sizeof(err));
    if (!ks) {
        fprintf(stderr, "treaty token: %s\n", err);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    for (size_t i = 0; i < tr_keyset_count(ks) && !match; i++) {
        const tr_jwk *k = tr_keyset_key(ks, i);

        if (k->kty == TR_KTY_EC && k->kid && EVP_PKEY_eq(k->pkey, pkey) == 1)
            match = k;
    }
    if (!match || strlen(match->kid) >= kid_cap) {
        fprintf(stderr, "treaty token: %s has no kid for the key in "
                "es256.pem\n", path);
        tr_keyset_unref(ks);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    memcpy(kid, match->kid, strlen(match->kid) + 1);
    tr_keyset_unref(ks);
    return pkey;
}

/* Base64url of a JSON value's compact serialisation, appended to out. */
static int
append_json(json_t *v, char *out, size_t cap, size_t *pos)
{
    char *s = json_dumps(v, JSON_COMPACT);
    size_t n;
    int rc;

    if (!s)
        return -1;
    rc = tr_b64url_encode((const uint8_t *)s, strlen(s), out + *pos,
                          cap - *pos, &n);
    free(s);
    if (rc == 0)
        *pos += n;
    return rc;
}

/* ES256 signs to DER; JWS wants fixed-width r || s. */
static int
sign_es256(EVP_PKEY *pkey, const char *msg, size_t len, uint8_t raw[64])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[80];
    const unsigned char *p = der;
    size_t der_len = sizeof(der);
    ECDSA_SIG *sig = NULL;
    int rc = -1;

    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1
        || EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)msg,
                          len) != 1)
        goto out;
    sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (!sig ||
        BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) != 32)
        goto out;
    rc = 0;
out:
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* --act a,b,c: a acts now, for b, for c: {sub:a, act:{sub:b, act:{...}}}.
 * Built from the innermost outwards. */
static json_t *
act_claim(const char *list)
{
    char *copy = strdup(list), *items[64];
    size_t n = 0;
    json_t *act = NULL;

    if (!copy)
        return NULL;
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        if (n == sizeof(items) / sizeof(items[0])) {
            json_decref(act);
            free(copy);
            return NULL;
        }
        items[n++] = t;
    }
    for (size_t i = n; i-- > 0;) {
        json_t *o = json_object();

        json_object_set_new(o, "sub", json_string(items[i]));
        if (act)
            json_object_set_new(o, "act", act);
        act = o;
    }
    free(copy);
    return act;
}

static int
set_claim(json_t *payload, const char *arg, bool as_json)
{
    const char *eq = strchr(arg, '=');
    char key[256];
    json_t *v;
    json_error_t je;

    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(key)) {
        fprintf(stderr, "treaty token: --claim wants KEY=VALUE: %s\n", arg);
        return -1;
    }
    memcpy(key, arg, (size_t)(eq - arg));
    key[eq - arg] = '\0';
    v = as_json ? json_loads(eq + 1, JSON_DECODE_ANY, &je)
                : json_string(eq + 1);
    if (!v) {
        fprintf(stderr, "treaty token: %s: bad value\n", arg);
        return -1;
    }
    json_object_set_new(payload, key, v);
    return 0;
}

typedef struct {
    const char *sub, *act, *scope, *client, *dir, *issuer, *typ;
    long ttl;
    json_t *aud;     /* array of strings */
    json_t *extra;   /* claims from --claim and --claim-json */
} mint_opts;

static int
parse_opts(int argc, char **argv, mint_opts *o)
{
    static const struct option opts[] = {
        { "sub", required_argument, NULL, 's' },
        { "act", required_argument, NULL, 'a' },
        { "scope", required_argument, NULL, 'S' },
        { "client", required_argument, NULL, 'c' },
        { "ttl", required_argument, NULL, 't' },
        { "dev-keys", required_argument, NULL, 'd' },
        { "issuer", required_argument, NULL, 'i' },
        { "aud", required_argument, NULL, 'A' },
        { "typ", required_argument, NULL, 'T' },
        { "claim", required_argument, NULL, 'k' },
        { "claim-json", required_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    char *end;
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': o->sub = optarg; break;
        case 'a': o->act = optarg; break;
        case 'S': o->scope = optarg; break;
        case 'c': o->client = optarg; break;
        case 'd': o->dir = optarg; break;
        case 'i': o->issuer = optarg; break;
        case 'T': o->typ = optarg; break;
        case 'A': json_array_append_new(o->aud, json_string(optarg)); break;
        case 't':
            errno = 0;
            o->ttl = strtol(optarg, &end, 10);
            if (errno || *end || o->ttl <= 0 || o->ttl > MAX_TTL) {
                fprintf(stderr, "treaty token: --ttl: 1..%ld seconds\n",
                        MAX_TTL);
                return 2;
            }
            break;
        case 'k':
        case 'j':
            if (set_claim(o->extra, optarg, ch == 'j') != 0)
                return 2;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !o->sub || !*o->sub) {
        usage(stderr);
        return 2;
    }
    return -1; /* go on */
}

static json_t *
build_payload(const mint_opts *o, time_t now)
{
    json_t *p = json_object(), *act;
    uint8_t rnd[16];
    char jti[33];

    json_object_set_new(p, "iss", json_string(o->issuer));
    json_object_set_new(p, "sub", json_string(o->sub));
    if (json_array_size(o->aud) == 1)
        json_object_set(p, "aud", json_array_get(o->aud, 0));
    else
        json_object_set(p, "aud", o->aud);
    json_object_set_new(p, "iat", json_integer((json_int_t)now));
    json_object_set_new(p, "exp", json_integer((json_int_t)now + o->ttl));
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        json_decref(p);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
    json_object_set_new(p, "jti", json_string(jti));
    if (o->scope)
        json_object_set_new(p, "scope", json_string(o->scope));
    if (o->client)
        json_object_set_new(p, "client_id", json_string(o->client));
    if (o->act) {
        if (!(act = act_claim(o->act))) {
            fprintf(stderr, "treaty token: --act: A[,B...], at most 64\n");
            json_decref(p);
            return NULL;
        }
        json_object_set_new(p, "act", act);
    }
    json_object_update(p, o->extra);
    return p;
}

static int
mint(int argc, char **argv)
{
    mint_opts o = {
        .dir = DEFAULT_DIR, .issuer = DEFAULT_ISSUER, .typ = "at+jwt",
        .ttl = DEFAULT_TTL, .aud = json_array(), .extra = json_object(),
    };
    json_t *header = NULL, *payload = NULL;
    EVP_PKEY *pkey = NULL;
    char kid[256], *tok = NULL;
    size_t cap, pos = 0, n;
    uint8_t sig[64];
    bool said = false;
    int rc = parse_opts(argc, argv, &o);

    if (rc >= 0)
        goto out;
    rc = 1;
    if (json_array_size(o.aud) == 0)
        json_array_append_new(o.aud, json_string(DEFAULT_AUD));
    if (!(pkey = load_key(o.dir, kid, sizeof(kid)))) {
        said = true;
        goto out;
    }
    header = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "typ", o.typ,
                       "kid", kid);
    payload = build_payload(&o, time(NULL));
    if (!header || !payload)
        goto out;
    cap = 65536;
    if (!(tok = malloc(cap)) || append_json(header, tok, cap, &pos) != 0)
        goto out;
    tok[pos++] = '.';
    if (append_json(payload, tok, cap, &pos) != 0 || pos + 100 > cap ||
        sign_es256(pkey, tok, pos, sig) != 0)
        goto out;
    tok[pos++] = '.';
    if (tr_b64url_encode(sig, sizeof(sig), tok + pos, cap - pos, &n) != 0)
        goto out;
    printf("%s\n", tok);
    rc = 0;
out:
    if (rc == 1 && !said)
        fprintf(stderr, "treaty token: cannot mint the token\n");
    free(tok);
    json_decref(header);
    json_decref(payload);
    json_decref(o.aud);
    json_decref(o.extra);
    EVP_PKEY_free(pkey);
    return rc;
}

int
tr_cmd_token(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "mint"))
        return mint(argc - 1, argv + 1);
    if (argc >= 2 &&
        (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
