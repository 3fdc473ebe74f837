/* Secrets (keys, tokens) are wiped before their memory is given back, so
 * that a core dump or a later allocation does not reveal them. */
#ifndef WIVAUDIT_SECRET_H
#define WIVAUDIT_SECRET_H

/* Overwrites the NUL-terminated s and frees it; NULL is a no-op. */
void wiv_secret_free(char *s);

#endif
