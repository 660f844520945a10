/* The version of fpesa, printed by every program's --version and used by
 * `make install` (pkg-config file) and `make deb` (package version). */
#ifndef FPESA_VERSION_H
#define FPESA_VERSION_H

#define FPESA_VERSION "1.0.0"

#endif
