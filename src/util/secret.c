/* Wiping secrets with a cleanse the compiler may not optimise away. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "wivaudit/secret.h"

void wiv_secret_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}
