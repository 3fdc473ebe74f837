/* Where the cache lives when no cache_dir is given: the one rule shared by
 * mount.wivaudit and the wivaudit command. */
#ifndef WIVAUDIT_CACHEDIR_H
#define WIVAUDIT_CACHEDIR_H

/* /var/cache/wivaudit as root, else $XDG_CACHE_HOME/wivaudit, else
 * ~/.cache/wivaudit. Returns a new string (caller frees), or NULL if
 * neither XDG_CACHE_HOME nor HOME is set (or out of memory). */
char *wiv_cachedir_default(void);

#endif
