/* The store's schema code is messages_post's: one source, compiled into
 * each plugin (plugins share no library). */
#include "../messages_post/store.c"
