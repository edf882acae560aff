/* Address syntax for listen/admin, upstream URLs and trusted_proxies. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

static bool
valid_dns_name(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
            return false;
    }
    return s[0] != '.' && s[0] != '-';
}

const char *
tr_cfg_parse_hostport(const char *s, uint16_t default_port,
                      bool allow_zero, char *host, size_t hostcap,
                      uint16_t *port)
{
    const char *h = s, *p = NULL;
    size_t hn;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        char tmp[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        if (close == NULL)
            return "missing ']' after the IPv6 address";
        h = s + 1;
        hn = (size_t)(close - h);
        if (hn == 0 || hn >= sizeof(tmp))
            return "invalid IPv6 address";
        memcpy(tmp, h, hn);
        tmp[hn] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return "invalid IPv6 address";
        if (close[1] == ':')
            p = close + 2;
        else if (close[1] != '\0')
            return "expected ':port' after ']'";
    } else {
        const char *colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL)
            return "write IPv6 addresses in brackets, like [::1]:8080";
        hn = colon ? (size_t)(colon - s) : strlen(s);
        if (!valid_dns_name(s, hn))
            return "invalid host name or address";
        if (colon != NULL)
            p = colon + 1;
    }
    if (hn >= hostcap)
        return "host name too long";
    memcpy(host, h, hn);
    host[hn] = '\0';

    if (p == NULL) {
        if (default_port == 0)
            return "missing ':port'";
        *port = default_port;
        return NULL;
    }
    size_t pn = strlen(p);
    if (pn == 0 || pn > 5 || strspn(p, "0123456789") != pn)
        return "port must be a number from 1 to 65535";
    long v = strtol(p, NULL, 10);
    if (v > 65535 || (v == 0 && !allow_zero))
        return "port must be a number from 1 to 65535";
    *port = (uint16_t)v;
    return NULL;
}

const char *
tr_cfg_parse_cidr(const char *s, tr_cidr *out, char *hint, size_t hintcap)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t an = slash ? (size_t)(slash - s) : strlen(s);
    unsigned max, prefix, base = 0;
    uint8_t bytes[16];

    hint[0] = '\0';
    if (an == 0 || an >= sizeof(addr))
        return "not an IP address";
    memcpy(addr, s, an);
    addr[an] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, addr, bytes) == 1) {
        out->addr[10] = out->addr[11] = 0xff;
        memcpy(out->addr + 12, bytes, 4);
        max = 32;
        base = 96;
    } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
        max = 128;
    } else {
        return "not an IP address";
    }

    prefix = max;
    if (slash != NULL) {
        size_t pn = strlen(slash + 1);
        if (pn == 0 || pn > 3 || strspn(slash + 1, "0123456789") != pn)
            return "prefix length must be a number";
        prefix = (unsigned)strtoul(slash + 1, NULL, 10);
        if (prefix > max)
            return max == 32 ? "prefix length must be 0 to 32"
                             : "prefix length must be 0 to 128";
    }
    out->prefix = (uint8_t)(base + prefix);

    /* Host bits set usually mean a typo ("10.0.0.1/8"): refuse, and show
     * the network the operator probably meant. */
    bool host_bits = false;
    uint8_t masked[16];
    memcpy(masked, out->addr, 16);
    for (unsigned b = out->prefix; b < 128; b++)
        if (masked[b / 8] & (0x80u >> (b % 8))) {
            masked[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
            host_bits = true;
        }
    if (!host_bits)
        return NULL;
    char net[INET6_ADDRSTRLEN];
    if (max == 32)
        inet_ntop(AF_INET, masked + 12, net, sizeof(net));
    else
        inet_ntop(AF_INET6, masked, net, sizeof(net));
    snprintf(hint, hintcap, "%s/%u", net, prefix);
    return "address has bits set beyond the prefix length";
}
