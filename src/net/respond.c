/*
 * Responses treaty generates itself: RFC 9457 problem documents and the
 * few plain answers of the admin listener.  Every refusal goes through
 * tr_respond_problem so its shape is the same everywhere.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "net/gateway.h"
#include "net/http_date.h"
#include "net/log.h"

const char *
tr_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 425: return "Too Early";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

/*
 * Writes a complete response with a fixed body.  The request is finished
 * here: whatever stage produced the answer has nothing left to do.
 */
void
tr_respond_simple(tr_request *req, int status, const char *ctype,
                  const char *extra_headers, const char *body,
                  size_t body_len)
{
    tr_client *c = req->client;
    char head[2048];

    /* A body we did not read makes the connection unusable for a next
     * request: close it after this answer. */
    if (c && req->has_body && !c->message_complete)
        req->keep_alive = false;
    bool head_only = req->method_bit == TR_M_HEAD;

    /* 204 carries no body and so no Content-Length (RFC 9110 §8.6). */
    char cl[160] = "";
    if (status != 204)
        snprintf(cl, sizeof(cl), "Content-Type: %s\r\n"
                 "Content-Length: %zu\r\n", ctype, body_len);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\n"
                     "Date: %s\r\n"
                     "%s"
                     "X-Request-Id: %s\r\n"
                     "%s%s",
                     status, tr_status_reason(status), tr_http_date_now(),
                     cl, req->id[0] ? req->id : "-",
                     extra_headers ? extra_headers : "",
                     req->keep_alive ? "" : "Connection: close\r\n");
    if (n < 0 || (size_t)n >= sizeof(head) - 2) {
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 500 Internal Server Error\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n");
        status = 500;
        body_len = 0;
        req->keep_alive = false;
    }
    memcpy(head + n, "\r\n", 2);
    n += 2;

    req->status = status;
    req->head_sent = true;
    if (c && !req->client_gone) {
        tr_buf out = { 0 };
        if (tr_buf_append(&out, head, (size_t)n, SIZE_MAX) == 0 &&
            (head_only || tr_buf_append(&out, body, body_len, SIZE_MAX) == 0))
            tr_client_write(c, out.data, out.len, true);
        tr_buf_free(&out);
        req->bytes_out += head_only ? 0 : body_len;
    }
    tr_request_finish(req);
}

static void
respond_problem_json(tr_request *req, tr_problem_kind kind,
                     const char *detail, const char *extra_headers,
                     json_t *ext)
{
    const tr_problem_info *pi = tr_problem(kind);
    json_t *doc = json_object();

    json_object_set_new(doc, "type", json_string(pi->type));
    json_object_set_new(doc, "title", json_string(pi->title));
    json_object_set_new(doc, "status", json_integer(pi->status));
    if (detail)
        json_object_set_new(doc, "detail", json_string(detail));
    if (req->id[0])
        json_object_set_new(doc, "request_id", json_string(req->id));
    if (ext)
        json_object_update(doc, ext);

    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);

    char headers[4096];
    int hn = snprintf(headers, sizeof(headers),
                      "Cache-Control: no-store\r\n%s%s",
                      (pi->status == 503 || pi->status == 429) &&
                              !(extra_headers &&
                                strstr(extra_headers, "Retry-After"))
                          ? "Retry-After: 1\r\n"
                          : "",
                      extra_headers ? extra_headers : "");
    if (hn < 0 || (size_t)hn >= sizeof(headers))
        headers[0] = '\0';
    if (!req->decision)
        req->decision = pi->status >= 500 ? "error" : "deny";
    if (!req->reason)
        req->reason = pi->slug;
    req->problem = kind;
    tr_respond_simple(req, pi->status, "application/problem+json", headers,
                      body ? body : "{}", body ? strlen(body) : 2);
    free(body);
}

void
tr_respond_problem(tr_request *req, tr_problem_kind kind, const char *detail,
                   const char *extra_headers)
{
    respond_problem_json(req, kind, detail, extra_headers, NULL);
}

void
tr_respond_problem_ext(tr_request *req, tr_problem_kind kind,
                       const char *detail, const char *extra_headers,
                       json_t *ext)
{
    respond_problem_json(req, kind, detail, extra_headers, ext);
}
