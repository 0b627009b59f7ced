/* The C ABI: items, an object read in place, and a stream, from plain C.
 *
 *   ZEROHOP_SOCKET=/run/zerohop/zerohop.sock ZEROHOP_ACCESS_KEY=dev-key ./c_api /demo
 */
#include <stdio.h>
#include <string.h>

#include "zerohop/zerohop.h"

static int check(int rc, const char* what) {
    if (rc != ZH_OK) {
        fprintf(stderr, "%s: %s (code %d)\n", what, zh_last_error(), rc);
    }
    return rc;
}

int main(int argc, char** argv) {
    const char* container = argc > 1 ? argv[1] : "/demo";
    char path[512];
    zh_client* c = zh_connect(NULL);
    if (c == NULL) {
        fprintf(stderr, "connect: %s\n", zh_last_error());
        return 1;
    }

    /* A directory for what follows (there already on a second run: fine). */
    snprintf(path, sizeof path, "%s/c-example", container);
    int made = zh_mkdir(c, path, 0755);
    if (made != ZH_OK && made != ZH_ALREADY_EXISTS) {
        check(made, "mkdir");
        zh_close(c);
        return 1;
    }

    /* An item with typed attributes, then an atomic counter update. */
    snprintf(path, sizeof path, "%s/c-example/alice", container);
    zh_attrs* a = zh_attrs_new();
    zh_attrs_set_string(a, "name", "Alice", 5);
    zh_attrs_set_int64(a, "visits", 0);
    int rc = check(zh_put_item(c, path, a, NULL, NULL), "put_item");
    zh_attrs_free(a);
    if (rc == ZH_OK) {
        rc = check(zh_update_item(c, path, "visits = visits + 1", NULL, NULL, NULL), "update_item");
    }
    zh_attrs* got = NULL;
    if (rc == ZH_OK && check(zh_get_item(c, path, NULL, 0, &got), "get_item") == ZH_OK) {
        int64_t visits = 0;
        zh_attrs_get_int64(got, "visits", &visits);
        printf("%s: visits=%lld\n", path, (long long)visits);
        zh_attrs_free(got);
    }

    /* An object, read back in place (no copy), released when done. */
    snprintf(path, sizeof path, "%s/c-example/hello.txt", container);
    const char* text = "hello from C\n";
    zh_view* v = NULL;
    if (check(zh_put(c, path, text, strlen(text), NULL, NULL, NULL), "put") == ZH_OK &&
        check(zh_get(c, path, 0, ZH_TO_END, &v), "get") == ZH_OK) {
        printf("%s: %.*s", path, (int)zh_view_size(v), (const char*)zh_view_data(v));
        zh_view_release(v);
    }

    /* A stream: put two records, read them from the earliest. */
    snprintf(path, sizeof path, "%s/c-example/events", container);
    zh_create_stream(c, path, 1, 3600); /* already there on a second run: fine */
    zh_record_input in[2] = {{"first", 5, 0, NULL}, {"second", 6, 0, NULL}};
    zh_record_result out[2];
    uint64_t seq = 0;
    zh_records* recs = NULL;
    if (check(zh_put_records(c, path, in, 2, out), "put_records") == ZH_OK &&
        check(zh_seek(c, path, 0, ZH_SEEK_EARLIEST, 0, 0, 0, &seq), "seek") == ZH_OK &&
        check(zh_get_records(c, path, 0, seq, 0, 0, &recs), "get_records") == ZH_OK) {
        printf("%s: %zu records from sequence %llu\n", path, zh_records_count(recs), (unsigned long long)seq);
        zh_records_free(recs);
    }
    zh_close(c);
    return rc == ZH_OK ? 0 : 1;
}
