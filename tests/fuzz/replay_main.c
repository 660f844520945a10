/* Replays a fuzz target's committed corpus without libFuzzer, so that
 * `make test` exercises every parser of outside input with every input the
 * fuzzers ever found interesting. Each file named on the command line is one
 * input; a crash or a sanitizer report fails the run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay(const char *path) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long len;
    int rc = -1;

    if (!f)
        return -1;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto out_close;
    buf = malloc((size_t)len + 1);
    if (!buf)
        goto out_close;
    if (fread(buf, 1, (size_t)len, f) != (size_t)len)
        goto out_free;
    LLVMFuzzerTestOneInput(buf, (size_t)len);
    rc = 0;
out_free:
    free(buf);
out_close:
    fclose(f);
    return rc;
}

int main(int argc, char **argv) {
    int failed = 0;

    for (int i = 1; i < argc; i++) {
        if (replay(argv[i]) != 0) {
            fprintf(stderr, "cannot read %s\n", argv[i]);
            failed++;
        }
    }
    return failed ? 1 : 0;
}
