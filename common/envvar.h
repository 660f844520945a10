/* Environment variables that tune a program (as opposed to the overrides of
 * endpoints.yaml, which config.c checks with the file): read once at start,
 * and a bad value is refused with a message naming the variable, never
 * ignored silently.
 */
#ifndef FPESA_ENVVAR_H
#define FPESA_ENVVAR_H

/* Reads name as a whole decimal number from min to max into *out; *out is def
 * when the variable is unset or empty. Returns 0, or -1 after printing
 * "NAME: bad value "...": expected a whole number from MIN to MAX UNIT" to
 * stderr. unit (borrowed) names what the number counts, e.g. "milliseconds". */
int envvar_long(const char *name, long def, long min, long max, const char *unit, long *out);

#endif
