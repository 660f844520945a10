# messages_post: writes the message store through the shared PostgreSQL helpers,
# reading the envelope with the exact JSON reader of common/.
messages_post_LIB := store
messages_post_COMMON := jsontext jsontext_utf8 decimal
