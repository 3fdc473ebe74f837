/* wivaudit setup: the customer's side of Wiv's integration as one command.
 * It picks an external id, writes the role's trust and permissions policies
 * and the mounting machine's reader policy for the bucket, prints the
 * configuration to send to Wiv support and the aws commands that create the
 * bucket and the role, and with --apply runs them. Exit status: 0 done,
 * 1 a file or an aws command failed, 2 bad usage. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "wivaudit/cli.h"
#include "wivaudit/creds.h"
#include "wivaudit/escape.h"
#include "wivaudit/source_spec.h"

#define PROG "wivaudit setup"
#define DEFAULT_ROLE "wiv-audit-log-delivery"
#define POLICY_NAME "wiv-audit-log-delivery"
#define MAX_ARGS 24

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wivaudit setup --bucket NAME --wiv-principal ARN "
		"[options]\n"
		"\n"
		"  --bucket NAME         the bucket Wiv delivers into\n"
		"  --wiv-principal ARN   Wiv's AWS principal (from Wiv "
		"support) that may\n"
		"                        assume the role\n"
		"  --account-id ID       your AWS account (default with "
		"--apply: asked of\n"
		"                        aws sts get-caller-identity)\n"
		"  --region NAME         the bucket's region (default: AWS "
		"config, else\n"
		"                        us-east-1)\n"
		"  --prefix P            key prefix Wiv writes under (default: "
		"none)\n"
		"  --role-name NAME      the role Wiv assumes "
		"(default: " DEFAULT_ROLE ")\n"
		"  --kms-key ARN         encrypt with this KMS key (default: "
		"SSE-S3)\n"
		"  --external-id ID      use this external id (default: the "
		"one in\n"
		"                        DIR/config.json for the same bucket, "
		"else new)\n"
		"  --existing-bucket     the bucket exists: create only the "
		"role\n"
		"  --profile NAME        AWS profile for the aws commands\n"
		"  --out DIR             where to write the files (default: "
		".)\n"
		"  --apply               run the aws commands (the aws found "
		"on PATH)\n"
		"\n"
		"Writes DIR/trust-policy.json, DIR/permissions-policy.json, "
		"DIR/reader-policy.json\n"
		"and DIR/config.json, prints the configuration to send to Wiv "
		"support and\n"
		"the aws commands that create the bucket and the role.\n");
}

struct setup {
	const char *bucket;
	const char *principal;
	char account[16];
	char region[64];
	const char *prefix; /* normalized: "" or "p/" */
	const char *role;
	const char *kms_key;
	char external_id[1300];
	const char *profile;
	char *out; /* absolute */
	bool existing_bucket;
	bool apply;
	const char *partition;
};

static bool all_of(const char *s, const char *extra, size_t min, size_t max)
{
	size_t n = strlen(s);
	if (n < min || n > max)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(extra, *s)))
			return false;
	return true;
}

static bool is_account_id(const char *s)
{
	return strlen(s) == 12 && strspn(s, "0123456789") == 12;
}

/* IAM's rules, so that a typo fails here and not halfway through --apply. */
static int validate(const struct setup *s)
{
	if (strncmp(s->principal, "arn:", 4) != 0 &&
	    !is_account_id(s->principal)) {
		fprintf(stderr,
			PROG ": --wiv-principal '%s' is neither an "
			     "ARN nor a 12-digit account id\n",
			s->principal);
		return EINVAL;
	}
	if (s->account[0] && !is_account_id(s->account)) {
		fprintf(stderr,
			PROG ": --account-id '%s' is not a 12-digit "
			     "AWS account id\n",
			s->account);
		return EINVAL;
	}
	if (!all_of(s->role, "+=,.@_-", 1, 64)) {
		fprintf(stderr,
			PROG ": --role-name '%s' is not a valid IAM "
			     "role name\n",
			s->role);
		return EINVAL;
	}
	if (s->external_id[0] &&
	    !all_of(s->external_id, "+=,.@:/_-", 2, 1224)) {
		fprintf(stderr, PROG ": --external-id may hold 2 to 1224 "
				     "letters, digits and +=,.@:/_-\n");
		return EINVAL;
	}
	if (!all_of(s->region, "-", 1, 63)) {
		fprintf(stderr, PROG ": --region '%s' is not a region name\n",
			s->region);
		return EINVAL;
	}
	if (s->kms_key && strncmp(s->kms_key, "arn:", 4) != 0) {
		fprintf(stderr, PROG ": --kms-key must be the key's ARN (IAM "
				     "policies name keys by ARN)\n");
		return EINVAL;
	}
	return 0;
}

/* Reuses the external id of DIR/config.json when it is for this bucket:
 * that is the one already sent to Wiv. Else makes a new one. */
static int pick_external_id(struct setup *s, const char *config_path)
{
	json_t *old = json_load_file(config_path, 0, NULL);
	const char *b = json_string_value(json_object_get(old, "bucket_name"));
	const char *id = json_string_value(json_object_get(old, "external_id"));
	unsigned char raw[16];

	if (b && id && strcmp(b, s->bucket) == 0 &&
	    all_of(id, "+=,.@:/_-", 2, 1224)) {
		snprintf(s->external_id, sizeof(s->external_id), "%s", id);
		printf("external id: %s (kept from %s)\n", id, config_path);
		json_decref(old);
		return 0;
	}
	json_decref(old);
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		fprintf(stderr, PROG ": no random bytes for the external id\n");
		return EIO;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		sprintf(s->external_id + 2 * i, "%02x", raw[i]);
	printf("external id: %s (new)\n", s->external_id);
	return 0;
}

/* Writes root as indented JSON to DIR/name through a temporary file, so a
 * failure leaves the old file whole. Returns 0 or errno (after a message). */
static int write_json(const struct setup *s, const char *name, json_t *root)
{
	char path[4096], tmp[4200];
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", s->out, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
	if (!root)
		rc = ENOMEM;
	else if (json_dump_file(root, tmp,
				JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0)
		rc = errno ? errno : EIO;
	else {
		/* json_dump_file leaves no trailing newline. */
		FILE *f = fopen(tmp, "a");
		if (!f || fputc('\n', f) == EOF || fclose(f) != 0)
			rc = errno ? errno : EIO;
		else if (rename(tmp, path) != 0)
			rc = errno;
	}
	if (rc) {
		unlink(tmp);
		fprintf(stderr, PROG ": cannot write %s: %s\n", path,
			strerror(rc));
	}
	json_decref(root);
	return rc;
}

static json_t *statement(const char *sid, json_t *action, json_t *resource)
{
	return json_pack("{s:s, s:s, s:o, s:o}", "Sid", sid, "Effect", "Allow",
			 "Action", action, "Resource", resource);
}

static json_t *policy(json_t *statements)
{
	return json_pack("{s:s, s:o}", "Version", "2012-10-17", "Statement",
			 statements);
}

/* Only Wiv's principal, and only with the external id: the confused-deputy
 * guard AWS recommends for third parties. */
static json_t *trust_policy(const struct setup *s)
{
	json_t *principal = is_account_id(s->principal)
				? json_sprintf("arn:%s:iam::%s:root",
					       s->partition, s->principal)
				: json_string(s->principal);
	json_t *st = json_pack("{s:s, s:s, s:{s:o}, s:s, s:{s:{s:s}}}", "Sid",
			       "WivAssumesWithExternalId", "Effect", "Allow",
			       "Principal", "AWS", principal, "Action",
			       "sts:AssumeRole", "Condition", "StringEquals",
			       "sts:ExternalId", s->external_id);
	return policy(json_pack("[o]", st));
}

/* Wiv only writes: PutObject under the prefix, and finds the bucket. */
static json_t *permissions_policy(const struct setup *s)
{
	json_t *v = json_array();
	json_array_append_new(
	    v, statement("WivWritesAuditLogs", json_string("s3:PutObject"),
			 json_sprintf("arn:%s:s3:::%s/%s*", s->partition,
				      s->bucket, s->prefix)));
	json_array_append_new(
	    v,
	    statement("WivFindsTheBucket", json_string("s3:GetBucketLocation"),
		      json_sprintf("arn:%s:s3:::%s", s->partition, s->bucket)));
	if (s->kms_key)
		json_array_append_new(
		    v, statement("WivEncryptsWithTheBucketKey",
				 json_pack("[s, s]", "kms:GenerateDataKey",
					   "kms:Encrypt"),
				 json_string(s->kms_key)));
	return policy(v);
}

/* The machine that mounts only lists and reads, under the prefix. */
static json_t *reader_policy(const struct setup *s)
{
	json_t *v = json_array();
	json_t *list =
	    statement("ListAuditLogs", json_string("s3:ListBucket"),
		      json_sprintf("arn:%s:s3:::%s", s->partition, s->bucket));
	if (s->prefix[0])
		json_object_set_new(list, "Condition",
				    json_pack("{s:{s:[o]}}", "StringLike",
					      "s3:prefix",
					      json_sprintf("%s*", s->prefix)));
	json_array_append_new(v, list);
	json_array_append_new(
	    v, statement("ReadAuditLogs", json_string("s3:GetObject"),
			 json_sprintf("arn:%s:s3:::%s/%s*", s->partition,
				      s->bucket, s->prefix)));
	if (s->kms_key) {
		/* The key decrypts for S3's reads only, not for anything else
		 * this identity might do. */
		json_t *kms =
		    statement("DecryptAuditLogs", json_string("kms:Decrypt"),
			      json_string(s->kms_key));
		json_object_set_new(
		    kms, "Condition",
		    json_pack("{s:{s:o}}", "StringEquals", "kms:ViaService",
			      json_sprintf("s3.%s.amazonaws.com%s", s->region,
					   strcmp(s->partition, "aws-cn") == 0
					       ? ".cn"
					       : "")));
		json_array_append_new(v, kms);
	}
	return policy(v);
}

/* What Wiv support needs, and what mount.wivaudit reads as its
 * configuration file (bucket_name, region, prefix). */
static json_t *config_json(const struct setup *s, const char *role_arn)
{
	json_t *c = json_pack("{s:s, s:s}", "bucket_name", s->bucket, "region",
			      s->region);
	if (c && s->prefix[0])
		json_object_set_new(c, "prefix", json_string(s->prefix));
	if (c) {
		json_object_set_new(c, "role_arn", json_string(role_arn));
		json_object_set_new(c, "external_id",
				    json_string(s->external_id));
	}
	return c;
}

struct cmd {
	const char *argv[MAX_ARGS];
	int argc;
};

static void add(struct cmd *c, const char *arg)
{
	if (c->argc < MAX_ARGS - 1)
		c->argv[c->argc++] = arg;
}

static void start(struct cmd *c, const struct setup *s, const char *service,
		  const char *op)
{
	c->argc = 0;
	add(c, "aws");
	add(c, service);
	add(c, op);
	if (s->profile) {
		add(c, "--profile");
		add(c, s->profile);
	}
}

/* Prints argv as a shell would need it typed. */
static void print_cmd(FILE *f, const char *lead, const struct cmd *c)
{
	fputs(lead, f);
	for (int i = 0; i < c->argc; i++) {
		fputs(i ? " " : "", f);
		wiv_escape_shell_word(f, c->argv[i]);
	}
	fputc('\n', f);
}

/* Runs c without a shell; with out non-NULL, its stdout goes there
 * (NUL-terminated, trailing whitespace cut). Returns its exit status, or
 * -1 after a message if it could not be run. */
static int run_cmd(const struct cmd *c, char *out, size_t outlen)
{
	int pipefd[2] = {-1, -1}, status;
	size_t used = 0;
	pid_t pid;

	fflush(stdout);
	if (out && pipe(pipefd) != 0) {
		fprintf(stderr, PROG ": pipe: %s\n", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		if (out) {
			dup2(pipefd[1], STDOUT_FILENO);
			close(pipefd[0]);
			close(pipefd[1]);
		}
		execvp(c->argv[0], (char *const *)c->argv);
		fprintf(stderr, PROG ": cannot run %s: %s\n", c->argv[0],
			strerror(errno));
		_exit(127);
	}
	if (out) {
		close(pipefd[1]);
		ssize_t n;
		while ((n = read(pipefd[0], out + used, outlen - 1 - used)) > 0)
			used += (size_t)n;
		close(pipefd[0]);
		out[used] = '\0';
		while (used && strchr(" \t\r\n", out[used - 1]))
			out[--used] = '\0';
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The account the aws CLI's credentials belong to. Returns 0 or EIO. */
static int ask_account(struct setup *s)
{
	struct cmd c;
	char out[256];

	start(&c, s, "sts", "get-caller-identity");
	add(&c, "--query");
	add(&c, "Account");
	add(&c, "--output");
	add(&c, "text");
	print_cmd(stdout, "+ ", &c);
	int rc = run_cmd(&c, out, sizeof(out));
	if (rc != 0 || !is_account_id(out)) {
		fprintf(stderr, PROG ": could not learn the account id from "
				     "the aws CLI; give --account-id\n");
		return EIO;
	}
	snprintf(s->account, sizeof(s->account), "%.12s", out);
	return 0;
}

/* The bucket (private, encrypted) and the role, in the order they depend
 * on each other. Prints them, or with --apply runs them, stopping at the
 * first failure. Returns 0 or 1. */
static int bucket_and_role(const struct setup *s)
{
	char trust[4200], perms[4200], sse[1024], desc[512];
	struct cmd cmds[5];
	int n = 0;

	snprintf(trust, sizeof(trust), "file://%s/trust-policy.json", s->out);
	snprintf(perms, sizeof(perms), "file://%s/permissions-policy.json",
		 s->out);
	if (s->kms_key)
		snprintf(sse, sizeof(sse),
			 "{\"Rules\":[{\"ApplyServerSideEncryptionByDefault\":"
			 "{\"SSEAlgorithm\":\"aws:kms\",\"KMSMasterKeyID\":"
			 "\"%s\"},\"BucketKeyEnabled\":true}]}",
			 s->kms_key);
	else
		snprintf(sse, sizeof(sse),
			 "{\"Rules\":[{\"ApplyServerSideEncryptionByDefault\":"
			 "{\"SSEAlgorithm\":\"AES256\"}}]}");
	snprintf(desc, sizeof(desc), "Wiv delivers audit logs into s3://%s",
		 s->bucket);
	char location[128];
	snprintf(location, sizeof(location), "LocationConstraint=%s",
		 s->region);

	if (!s->existing_bucket) {
		start(&cmds[n], s, "s3api", "create-bucket");
		add(&cmds[n], "--bucket");
		add(&cmds[n], s->bucket);
		add(&cmds[n], "--region");
		add(&cmds[n], s->region);
		/* us-east-1 refuses a location constraint naming itself. */
		if (strcmp(s->region, "us-east-1") != 0) {
			add(&cmds[n], "--create-bucket-configuration");
			add(&cmds[n], location);
		}
		n++;
		start(&cmds[n], s, "s3api", "put-public-access-block");
		add(&cmds[n], "--bucket");
		add(&cmds[n], s->bucket);
		add(&cmds[n], "--region");
		add(&cmds[n], s->region);
		add(&cmds[n], "--public-access-block-configuration");
		add(&cmds[n],
		    "BlockPublicAcls=true,IgnorePublicAcls=true,"
		    "BlockPublicPolicy=true,RestrictPublicBuckets=true");
		n++;
		start(&cmds[n], s, "s3api", "put-bucket-encryption");
		add(&cmds[n], "--bucket");
		add(&cmds[n], s->bucket);
		add(&cmds[n], "--region");
		add(&cmds[n], s->region);
		add(&cmds[n], "--server-side-encryption-configuration");
		add(&cmds[n], sse);
		n++;
	}
	start(&cmds[n], s, "iam", "create-role");
	add(&cmds[n], "--role-name");
	add(&cmds[n], s->role);
	add(&cmds[n], "--description");
	add(&cmds[n], desc);
	add(&cmds[n], "--assume-role-policy-document");
	add(&cmds[n], trust);
	n++;
	start(&cmds[n], s, "iam", "put-role-policy");
	add(&cmds[n], "--role-name");
	add(&cmds[n], s->role);
	add(&cmds[n], "--policy-name");
	add(&cmds[n], POLICY_NAME);
	add(&cmds[n], "--policy-document");
	add(&cmds[n], perms);
	n++;

	if (!s->apply) {
		printf("\nCreate %sthe role Wiv writes with (or run this "
		       "again with --apply):\n\n",
		       s->existing_bucket ? "" : "the bucket and ");
		for (int i = 0; i < n; i++)
			print_cmd(stdout, "  ", &cmds[i]);
		return 0;
	}
	printf("\nCreating %sthe role Wiv writes with:\n",
	       s->existing_bucket ? "" : "the bucket and ");
	for (int i = 0; i < n; i++) {
		print_cmd(stdout, "+ ", &cmds[i]);
		int rc = run_cmd(&cmds[i], NULL, 0);
		if (rc != 0) {
			fprintf(stderr,
				PROG ": 'aws %s %s' failed (status %d); the "
				     "commands before it were applied, fix "
				     "the cause and run the rest by hand\n",
				cmds[i].argv[1], cmds[i].argv[2], rc);
			return 1;
		}
	}
	return 0;
}

static const char *partition_of(const char *region)
{
	if (strncmp(region, "cn-", 3) == 0)
		return "aws-cn";
	if (strncmp(region, "us-gov-", 7) == 0)
		return "aws-us-gov";
	return "aws";
}

/* Everything after the options are checked. Returns the exit status. */
static int run_setup(struct setup *s)
{
	static const char *const files[] = {
	    "trust-policy.json", "permissions-policy.json",
	    "reader-policy.json", "config.json"};
	char config_path[4200], role_arn[256];
	json_t *cfg;

	snprintf(config_path, sizeof(config_path), "%s/config.json", s->out);
	if (!s->external_id[0] && pick_external_id(s, config_path))
		return 1;
	if (!s->account[0] && ask_account(s))
		return 1;
	snprintf(role_arn, sizeof(role_arn), "arn:%s:iam::%s:role/%s",
		 s->partition, s->account, s->role);
	cfg = config_json(s, role_arn);
	if (write_json(s, files[0], trust_policy(s)) ||
	    write_json(s, files[1], permissions_policy(s)) ||
	    write_json(s, files[2], reader_policy(s)) ||
	    write_json(s, files[3], json_incref(cfg))) {
		json_decref(cfg);
		return 1;
	}
	printf("wrote");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		printf(" %s/%s", s->out, files[i]);
	printf("\n");

	if (bucket_and_role(s)) {
		json_decref(cfg);
		return 1;
	}
	char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(cfg);
	if (!text) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	printf("\nSend this configuration to Wiv support (it is also %s):"
	       "\n\n%s\n",
	       config_path, text);
	free(text);
	printf("\nOn the machine that mounts: give its AWS identity the "
	       "policy in\n%s/reader-policy.json, then\n\n"
	       "  install -D -m 0644 %s /etc/wivaudit/config.json\n"
	       "  mkdir -p /mnt/audit && mount -t wivaudit s3://%s%s%s "
	       "/mnt/audit\n"
	       "  wivaudit doctor        # if anything is not right\n",
	       s->out, config_path, s->bucket, s->prefix[0] ? "/" : "",
	       s->prefix);
	return 0;
}

int wiv_cli_setup(int argc, char **argv)
{
	enum {
		O_BUCKET = 256,
		O_PRINCIPAL,
		O_ACCOUNT,
		O_REGION,
		O_PREFIX,
		O_ROLE,
		O_KMS,
		O_EXTID,
		O_EXISTING,
		O_PROFILE,
		O_OUT,
		O_APPLY
	};
	static const struct option longopts[] = {
	    {"bucket", required_argument, NULL, O_BUCKET},
	    {"wiv-principal", required_argument, NULL, O_PRINCIPAL},
	    {"account-id", required_argument, NULL, O_ACCOUNT},
	    {"region", required_argument, NULL, O_REGION},
	    {"prefix", required_argument, NULL, O_PREFIX},
	    {"role-name", required_argument, NULL, O_ROLE},
	    {"kms-key", required_argument, NULL, O_KMS},
	    {"external-id", required_argument, NULL, O_EXTID},
	    {"existing-bucket", no_argument, NULL, O_EXISTING},
	    {"profile", required_argument, NULL, O_PROFILE},
	    {"out", required_argument, NULL, O_OUT},
	    {"apply", no_argument, NULL, O_APPLY},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct setup s = {.role = DEFAULT_ROLE};
	const char *out = ".", *prefix = NULL;
	struct wiv_source_spec spec = {0};
	char source[128], err[512];
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case O_BUCKET:
			s.bucket = optarg;
			break;
		case O_PRINCIPAL:
			s.principal = optarg;
			break;
		case O_ACCOUNT:
			snprintf(s.account, sizeof(s.account), "%.15s", optarg);
			break;
		case O_REGION:
			snprintf(s.region, sizeof(s.region), "%.63s", optarg);
			break;
		case O_PREFIX:
			prefix = optarg;
			break;
		case O_ROLE:
			s.role = optarg;
			break;
		case O_KMS:
			s.kms_key = optarg;
			break;
		case O_EXTID:
			snprintf(s.external_id, sizeof(s.external_id),
				 "%.1299s", optarg);
			break;
		case O_EXISTING:
			s.existing_bucket = true;
			break;
		case O_PROFILE:
			s.profile = optarg;
			break;
		case O_OUT:
			out = optarg;
			break;
		case O_APPLY:
			s.apply = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr,
				PROG ": bad or incomplete option '%s' "
				     "(see --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc || !s.bucket || !s.principal) {
		fprintf(stderr, PROG ": %s\n",
			optind != argc ? "unexpected argument"
			: !s.bucket    ? "--bucket NAME is required"
				       : "--wiv-principal ARN is required (Wiv "
					 "support gives it)");
		return 2;
	}
	if (!s.account[0] && !s.apply) {
		fprintf(stderr, PROG ": --account-id is required without "
				     "--apply (aws sts get-caller-identity "
				     "shows it)\n");
		return 2;
	}
	snprintf(source, sizeof(source), "s3://%.100s", s.bucket);
	if (wiv_source_spec_resolve(source, prefix, &spec, err, sizeof(err))) {
		fprintf(stderr, PROG ": %s\n", wiv_esc(err).s);
		return 2;
	}
	s.prefix = spec.prefix;
	if (!s.region[0] &&
	    wiv_creds_region(s.profile, s.region, sizeof(s.region)) != 0)
		snprintf(s.region, sizeof(s.region), "us-east-1");
	s.partition = partition_of(s.region);
	if (validate(&s)) {
		wiv_source_spec_free(&spec);
		return 2;
	}
	s.out = realpath(out, NULL);
	if (!s.out) {
		fprintf(stderr, PROG ": --out %s: %s\n", out, strerror(errno));
		wiv_source_spec_free(&spec);
		return 2;
	}
	rc = run_setup(&s);
	free(s.out);
	wiv_source_spec_free(&spec);
	return rc;
}
