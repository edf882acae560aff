#ifndef TREATY_NET_HTTP_DATE_H
#define TREATY_NET_HTTP_DATE_H

/* The IMF-fixdate of the current second, formatted at most once a second
 * (loop thread only). */
const char *tr_http_date_now(void);

#endif
