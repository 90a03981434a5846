/* SPDX-License-Identifier: MIT */
/* sockpath.h - where the daemon listens unless told otherwise: part of the contract. */
#ifndef COPRO_SOCKPATH_H
#define COPRO_SOCKPATH_H

#include <stddef.h>

/*
 * Writes the default socket path: $COPRO_SOCKET if set, else
 * $XDG_RUNTIME_DIR/coprod.sock, else /tmp/coprod-UID.sock. Returns its length,
 * -EINVAL for a NULL buffer or -ENAMETOOLONG if it does not fit buf or a
 * sockaddr_un.
 */
int copro_sockpath_default(char *buf, size_t len);

#endif
