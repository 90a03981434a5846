// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include "sockpath.h"

int copro_sockpath_default(char *buf, size_t len)
{
	const char *env = getenv("COPRO_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (!buf || !len)
		return -EINVAL;
	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (xdg && *xdg)
		n = snprintf(buf, len, "%s/coprod.sock", xdg);
	else
		n = snprintf(buf, len, "/tmp/coprod-%u.sock", (unsigned)getuid());
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	return n;
}
