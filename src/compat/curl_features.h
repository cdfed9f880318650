/*
 * Copyright (c) 2025 The imaprelayd authors
 *
 * Permission to use, copy, modify, and distribute this software for any
 * purpose with or without fee is hereby granted, provided that the above
 * copyright notice and this permission notice appear in all copies.
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 * WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 * MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 * ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
 * ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 */

/*
 * What the libcurl we build against can do, named by feature so that
 * the auth process reads as what it does, not as a list of versions.
 */

#ifndef COMPAT_CURL_FEATURES_H
#define COMPAT_CURL_FEATURES_H

#include <curl/curl.h>

/* CURLOPT_CAINFO_BLOB, CURLOPT_SSLCERT_BLOB, CURLOPT_SSLKEY_BLOB: 7.77 */
#if LIBCURL_VERSION_NUM >= 0x074d00
#define HAVE_CURL_BLOBS		1
#endif

/* CURLOPT_PROTOCOLS_STR, with CURLOPT_PROTOCOLS deprecated: 7.85 */
#if LIBCURL_VERSION_NUM >= 0x075500
#define HAVE_CURLOPT_PROTOCOLS_STR	1
#endif

#endif /* COMPAT_CURL_FEATURES_H */
