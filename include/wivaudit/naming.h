/* File names for events (DESIGN.md "File name"). */
#ifndef WIVAUDIT_NAMING_H
#define WIVAUDIT_NAMING_H

#include <stddef.h>
#include <stdint.h>

#include "wivaudit/split.h"

/* Longest name wiv_event_name can produce, without ".json" and "~N". */
#define WIV_NAME_MAX 200

/* Writes the base name (without ".json") for an event: the id with '/', '%',
 * control bytes (C0, DEL, and each C1 control as its two UTF-8 bytes: U+009B
 * is "%C2%9B") and a leading '.' percent-encoded; if longer than 200 bytes,
 * its first 180 bytes, '-', and 16 hex digits of SHA-256(id). With no usable
 * id: "_noid-{key_ms}-{position}". out must hold WIV_NAME_MAX + 1 bytes.
 * Returns the length written. */
size_t wiv_event_name(enum wiv_id_kind kind, const char *id, size_t id_len,
		      int64_t key_ms, size_t position, char *out);

#endif
