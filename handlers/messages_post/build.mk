# messages_post: writes the message store through the shared PostgreSQL helpers.
messages_post_LIB := store
