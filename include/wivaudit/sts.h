/* AWS STS: trading a role ARN (and source credentials or a web identity
 * token) for temporary credentials. Requests are form POSTs to the regional
 * endpoint https://sts.REGION.amazonaws.com, or to AWS_ENDPOINT_URL_STS when
 * set (the AWS SDKs' name for it). Functions return 0 or a positive errno,
 * with a one-line message in err that never holds a secret. */
#ifndef WIVAUDIT_STS_H
#define WIVAUDIT_STS_H

#include <stddef.h>

#include "wivaudit/creds.h"

struct wiv_sts_role {
	const char *role_arn;
	const char *session_name; /* NULL: "wivaudit-<unix time>" */
	const char *external_id;  /* AssumeRole only; NULL for none */
	unsigned duration_s;	  /* 0: STS's default (one hour) */
	const char *region;	  /* of the endpoint; NULL: us-east-1 */
};

/* AssumeRole, signed (SigV4) with source. Fills out (its source field is
 * left for the caller). Returns 0, EACCES when STS refuses, or another
 * errno. */
int wiv_sts_assume_role(const struct wiv_sts_role *role,
			const struct wiv_creds *source, struct wiv_creds *out,
			char *err, size_t errlen);

/* AssumeRoleWithWebIdentity with the OIDC token (unsigned). As above. */
int wiv_sts_assume_role_with_web_identity(const struct wiv_sts_role *role,
					  const char *token,
					  struct wiv_creds *out, char *err,
					  size_t errlen);

/* Parses the <Credentials> of an AssumeRole or AssumeRoleWithWebIdentity
 * answer into out (clear it with wiv_creds_clear). Pure. Returns 0,
 * EBADMSG when the document is not one or lacks a field, or ENOMEM. */
int wiv_sts_parse_credentials(const void *xml, size_t len,
			      struct wiv_creds *out);

#endif
