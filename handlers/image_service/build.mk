# image_service: libvips for the transforms, the shared PostgreSQL helpers.
image_service_PKGS := jansson vips
image_service_LIB := store rpc
