/* The credential sources that are neither environment, files nor STS: an
 * external command (credential_process), the ECS container endpoint and EC2
 * instance metadata. Each fills a struct wiv_creds (its source field too).
 * Functions return 0 or a positive errno, with a one-line message in err
 * that never holds a secret. */
#ifndef WIVAUDIT_CREDSRC_H
#define WIVAUDIT_CREDSRC_H

#include <stddef.h>

#include <jansson.h>

#include "wivaudit/awsconfig.h"
#include "wivaudit/creds.h"

/* Runs command (split into words like a POSIX shell, no shell run: as the
 * AWS CLI does) and reads its JSON from stdout: {"Version": 1,
 * "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}. A command
 * that runs longer than a minute is killed. Returns 0, EINVAL (bad command
 * or answer) or EIO (failed to run or exit 0). */
int wiv_credsrc_process(const char *command, const char *profile,
			struct wiv_creds *out, char *err, size_t errlen);

/* ECS/EKS container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 * (against http://169.254.170.2), else AWS_CONTAINER_CREDENTIALS_FULL_URI
 * (plain http only to a loopback or the container agent's address), sent
 * with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE's content or
 * AWS_CONTAINER_AUTHORIZATION_TOKEN as Authorization. Returns 0, ENOENT when
 * neither variable is set, or the errno of the failure. */
int wiv_credsrc_container(struct wiv_creds *out, char *err, size_t errlen);

/* EC2 instance metadata, IMDSv2: a session token from PUT
 * /latest/api/token, then the role named at
 * /latest/meta-data/iam/security-credentials/ and its credentials. The
 * endpoint is AWS_EC2_METADATA_SERVICE_ENDPOINT, else 169.254.169.254 (or
 * [fd00:ec2::254] with AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6); each
 * request gets about a second. Returns 0, ENOENT when
 * AWS_EC2_METADATA_DISABLED is true, no service answers or no role is
 * attached (err says which), or the errno of a failure past that point. */
int wiv_credsrc_imds(struct wiv_creds *out, char *err, size_t errlen);

/* IAM Identity Center (SSO) profile p: sso_session (its [sso-session NAME]
 * giving sso_start_url and sso_region) or the legacy sso_start_url and
 * sso_region in the profile, with sso_account_id and sso_role_name. Reads
 * the token `aws sso login` cached in ~/.aws/sso/cache/SHA1.json (SHA-1 of
 * the session name, or of the start URL) and trades it at the portal's
 * GetRoleCredentials (AWS_ENDPOINT_URL_SSO, else
 * https://portal.sso.REGION.amazonaws.com). Returns 0, ENOENT when p is no
 * SSO profile, EACCES when the login is missing, expired or refused (err
 * then says to run `aws sso login --profile NAME`), EINVAL for incomplete
 * settings, or the errno of a failed request. The token is never put in
 * err. */
int wiv_credsrc_sso(const struct wiv_awsconfig_profile *p,
		    struct wiv_creds *out, char *err, size_t errlen);

/* Reads AccessKeyId, SecretAccessKey, token_field (the session token, may
 * be absent) and Expiration (may be absent: long-term keys) from obj into
 * out (its source field untouched). Returns 0, EINVAL with the missing or
 * malformed field named in err, or ENOMEM. */
int wiv_credsrc_from_json(const json_t *obj, const char *token_field,
			  struct wiv_creds *out, char *err, size_t errlen);

#endif
