/* The connection helpers are the message store's: one source, compiled into
 * each plugin (plugins share no library). */
#include "../messages_post/store.c"
