/* clattn-viz: attention weights as a PNG heat map.
 *
 * Demo (no --probs): queries and keys are the sinusoidal positional encodings of "Attention Is All
 * You Need", PE(p)[2k] = sin(p / 10000^(2k/d)), PE(p)[2k+1] = cos(p / 10000^(2k/d)). Since
 * PE(p + δ) is a fixed rotation of PE(p), a head whose query for token i is gain * PE(i + δ) scores
 * key j by a function of i + δ - j alone: it attends by relative position. Four heads share one
 * key head (multi-query): δ = 0 (the token itself), -1 (the previous token), -4, and +2 with a low
 * gain (a broad look ahead, which --causal cuts off). Batch entry b starts at absolute position
 * 100*b; its map is the same, since only relative positions matter. The probabilities come from
 * clattn's unfused path on the chosen device.
 *
 * With --probs FILE --shape B,H,Lq,Lk it draws a float32 [B,H,Lq,Lk] file instead (as
 * clattn_attention writes probs, or clattn_mha_forward attn_weights).
 *
 * Public API only. Exit status: 0 written, 1 failed, 2 usage, 77 no OpenCL device (demo).
 */
#include <clattn.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEMO_D 64        /* head width of the demo: 32 sine/cosine pairs */
#define DEMO_HEADS 4
#define DEMO_BATCH 2
#define MAX_LEN 4096

static const int demo_shift[DEMO_HEADS] = {0, -1, -4, 2};
static const float demo_gain[DEMO_HEADS] = {4.0f, 4.0f, 4.0f, 1.5f};

typedef struct options {
    const char *out, *device, *probs_path;
    int head;            /* >= 0, CLATTN_MAP_MEAN or CLATTN_MAP_GRID */
    int batch, causal, len;
    int B, H, Lq, Lk;    /* --shape */
} options;

static void usage(FILE *f)
{
    fputs("usage: clattn-viz [options]\n"
          "  --out FILE          PNG to write (default attention.png)\n"
          "  --head N|mean|grid  one head, the mean over heads, or all heads (default grid)\n"
          "  --batch N           batch entry to draw (default 0)\n"
          "  --causal            demo: top-left causal mask (token i sees j <= i)\n"
          "  --len L             demo: tokens (default 32, at most 4096)\n"
          "  --device SELECTOR   demo: as CLATTN_DEVICE (\"P:D\", gpu, cpu, or a name part)\n"
          "  --probs FILE --shape B,H,Lq,Lk   draw a raw float32 [B,H,Lq,Lk] file instead\n"
          "  --help              this text\n"
          "The demo's queries and keys are sinusoidal positional encodings; its heads attend to\n"
          "the token itself, the previous one, four back, and (broadly) two ahead.\n",
          f);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* 0: go on; 1: --help; -1: usage error (already reported). */
static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->out = "attention.png";
    o->head = CLATTN_MAP_GRID;
    o->len = 32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int takes = strcmp(a, "--out") == 0 || strcmp(a, "--head") == 0 ||
                          strcmp(a, "--batch") == 0 || strcmp(a, "--len") == 0 ||
                          strcmp(a, "--device") == 0 || strcmp(a, "--probs") == 0 ||
                          strcmp(a, "--shape") == 0;
        const char *v = NULL;
        if (takes) {
            if (i + 1 >= argc) {
                fprintf(stderr, "clattn-viz: %s needs a value\n", a);
                return -1;
            }
            v = argv[++i];
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--causal") == 0) {
            o->causal = 1;
        } else if (strcmp(a, "--out") == 0) {
            o->out = v;
        } else if (strcmp(a, "--device") == 0) {
            o->device = v;
        } else if (strcmp(a, "--probs") == 0) {
            o->probs_path = v;
        } else if (strcmp(a, "--head") == 0) {
            if (strcmp(v, "mean") == 0)
                o->head = CLATTN_MAP_MEAN;
            else if (strcmp(v, "grid") == 0)
                o->head = CLATTN_MAP_GRID;
            else if (parse_int(v, 0, 1 << 20, &o->head)) {
                fprintf(stderr, "clattn-viz: --head \"%s\": want a head number, mean or grid\n", v);
                return -1;
            }
        } else if (strcmp(a, "--batch") == 0) {
            if (parse_int(v, 0, 1 << 20, &o->batch)) {
                fprintf(stderr, "clattn-viz: --batch \"%s\": want an entry number\n", v);
                return -1;
            }
        } else if (strcmp(a, "--len") == 0) {
            if (parse_int(v, 1, MAX_LEN, &o->len)) {
                fprintf(stderr, "clattn-viz: --len \"%s\": want 1..%d tokens\n", v, MAX_LEN);
                return -1;
            }
        } else if (strcmp(a, "--shape") == 0) {
            if (sscanf(v, "%d,%d,%d,%d", &o->B, &o->H, &o->Lq, &o->Lk) != 4 || o->B < 1 || o->H < 1 ||
                o->Lq < 1 || o->Lk < 1) {
                fprintf(stderr, "clattn-viz: --shape \"%s\": want B,H,Lq,Lk, each >= 1\n", v);
                return -1;
            }
        } else {
            fprintf(stderr, "clattn-viz: unknown option \"%s\" (try --help)\n", a);
            return -1;
        }
    }
    if (!o->probs_path != !o->B) {
        fprintf(stderr, "clattn-viz: --probs and --shape go together\n");
        return -1;
    }
    return 0;
}

/* PE(pos) * gain into out[DEMO_D]. */
static void positional_encoding(double pos, float gain, float *out)
{
    for (int k = 0; k < DEMO_D / 2; k++) {
        const double w = pow(10000.0, -2.0 * k / DEMO_D);
        out[2 * k] = gain * (float)sin(pos * w);
        out[2 * k + 1] = gain * (float)cos(pos * w);
    }
}

/* The demo's probabilities [B, H, L, L] on the device; NULL on failure (reported), *rc set. */
static float *demo_probs(const options *o, int *rc)
{
    clattn_context *ctx = NULL;
    clattn_attention_desc desc;
    clattn_tensor_sizes sz;
    float *q = NULL, *k = NULL, *v = NULL, *out = NULL, *probs = NULL;
    const int L = o->len;
    *rc = 1;
    memset(&desc, 0, sizeof desc);
    desc.batch = DEMO_BATCH;
    desc.heads_q = DEMO_HEADS;
    desc.heads_kv = 1;
    desc.seq_q = desc.seq_kv = L;
    desc.head_dim = DEMO_D;
    desc.layout = CLATTN_LAYOUT_BHSD;
    desc.causal = o->causal ? CLATTN_CAUSAL_TOP_LEFT : CLATTN_CAUSAL_NONE;
    desc.path = CLATTN_PATH_UNFUSED;   /* the path that stores the probabilities */
    if (clattn_attention_sizes(&desc, &sz) != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn-viz: the demo's shape was refused\n");
        return NULL;
    }
    q = malloc(sz.q), k = malloc(sz.k), v = malloc(sz.v), out = malloc(sz.out), probs = malloc(sz.probs);
    if (!q || !k || !v || !out || !probs) {
        fprintf(stderr, "clattn-viz: out of host memory\n");
        goto fail;
    }
    for (int b = 0; b < DEMO_BATCH; b++) {
        const double start = 100.0 * b;
        for (int i = 0; i < L; i++) {
            float *kr = k + ((size_t)b * (size_t)L + (size_t)i) * DEMO_D;
            positional_encoding(start + i, 1.0f, kr);
            memcpy(v + ((size_t)b * (size_t)L + (size_t)i) * DEMO_D, kr, DEMO_D * sizeof *kr);
            for (int h = 0; h < DEMO_HEADS; h++)
                positional_encoding(start + i + demo_shift[h], demo_gain[h],
                                    q + (((size_t)b * DEMO_HEADS + (size_t)h) * (size_t)L + (size_t)i) *
                                            DEMO_D);
        }
    }
    clattn_status st = clattn_context_create(o->device, &ctx);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn-viz: no device for \"%s\": %s\n", o->device ? o->device : "",
                clattn_status_string(st));
        *rc = st == CLATTN_DEVICE_NOT_FOUND ? 77 : 1;
        goto fail;
    }
    st = clattn_attention_host(ctx, &desc, q, k, v, NULL, out, probs, NULL);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn-viz: clattn_attention_host: %s: %s\n", clattn_status_string(st),
                clattn_context_last_error(ctx));
        goto fail;
    }
    printf("demo: %d tokens, %d heads over one shared key head, d = %d, %s, on %s\n", L, DEMO_HEADS,
           DEMO_D, o->causal ? "causal (top-left)" : "not causal", clattn_context_device_name(ctx));
    *rc = 0;
    goto done;
fail:
    free(probs);
    probs = NULL;
done:
    clattn_context_release(ctx);
    free(q), free(k), free(v), free(out);
    return probs;
}

/* What each head of batch entry b attends to most: the share of rows whose largest weight sits at
   key i + δ, per head, for the demo (a check in words of what the picture shows). */
static void describe_demo(const float *probs, const options *o, int b)
{
    const int L = o->len;
    for (int h = 0; h < DEMO_HEADS; h++) {
        int hits = 0, rows = 0;
        for (int i = 0; i < L; i++) {
            const float *row = probs + (((size_t)b * DEMO_HEADS + (size_t)h) * (size_t)L + (size_t)i) *
                                           (size_t)L;
            const int target = i + demo_shift[h];
            if (target < 0 || target >= L || (o->causal && target > i))
                continue;
            int best = 0;
            for (int j = 1; j < L; j++)
                if (row[j] > row[best])
                    best = j;
            rows++;
            hits += best == target;
        }
        printf("  head %d (query = %.1f * PE(i %+d)): argmax at key i %+d in %d of %d rows where it "
               "exists%s\n", h, demo_gain[h], demo_shift[h], demo_shift[h], hits, rows,
               o->causal && demo_shift[h] > 0 ? " (hidden by the causal mask)" : "");
    }
}

static float *read_probs(const options *o)
{
    const size_t n = (size_t)o->B * (size_t)o->H * (size_t)o->Lq * (size_t)o->Lk;
    float *p = malloc(n * sizeof *p);
    FILE *f = fopen(o->probs_path, "rb");
    if (!p || !f) {
        fprintf(stderr, "clattn-viz: %s: %s\n", o->probs_path, p ? "cannot open" : "out of memory");
        goto fail;
    }
    size_t got = fread(p, sizeof *p, n, f);
    int extra = fgetc(f);
    if (got != n || extra != EOF) {
        fprintf(stderr, "clattn-viz: %s: expected exactly %zu float32 values for --shape %d,%d,%d,%d\n",
                o->probs_path, n, o->B, o->H, o->Lq, o->Lk);
        goto fail;
    }
    fclose(f);
    return p;
fail:
    if (f)
        fclose(f);
    free(p);
    return NULL;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc > 0 ? 0 : 2;

    float *probs = NULL;
    char **labels = NULL;
    clattn_attention_map_desc m;
    memset(&m, 0, sizeof m);
    if (o.probs_path) {
        probs = read_probs(&o);
        rc = probs ? 0 : 1;
        m.batch = o.B, m.heads = o.H, m.seq_q = o.Lq, m.seq_kv = o.Lk;
    } else {
        probs = demo_probs(&o, &rc);
        m.batch = DEMO_BATCH, m.heads = DEMO_HEADS, m.seq_q = m.seq_kv = o.len;
    }
    if (!probs)
        goto out;
    rc = 1;
    if (o.batch >= m.batch || o.head >= m.heads) {
        fprintf(stderr, "clattn-viz: --batch %d / --head %d: the weights have %d batch entries and %d "
                "heads\n", o.batch, o.head, m.batch, m.heads);
        goto out;
    }
    m.batch_index = o.batch;
    m.head = o.head;
    if (!o.probs_path) {
        /* token labels t0 .. t{L-1}, one per query row and key column */
        labels = calloc((size_t)o.len, sizeof *labels);
        for (int i = 0; labels && i < o.len; i++) {
            labels[i] = malloc(16);
            if (labels[i])
                snprintf(labels[i], 16, "t%d", i);
        }
        if (labels)
            m.q_labels = m.k_labels = (const char *const *)labels;
        if (o.batch < DEMO_BATCH)
            describe_demo(probs, &o, o.batch);
    }
    clattn_status st = clattn_attention_map_png(NULL, &m, probs, o.out);
    if (st != CLATTN_SUCCESS) {
        /* No context holds the detail here (none exists in file mode): say what the status means. */
        fprintf(stderr, "clattn-viz: writing %s: %s%s\n", o.out, clattn_status_string(st),
                st == CLATTN_IO_ERROR      ? " (cannot create the file there)"
                : st == CLATTN_UNSUPPORTED ? " (this clattn was built without libpng)" : "");
        goto out;
    }
    printf("wrote %s: batch entry %d, %s\n", o.out, o.batch,
           o.head == CLATTN_MAP_GRID ? "all heads" : o.head == CLATTN_MAP_MEAN ? "mean over heads" : "one head");
    rc = 0;
out:
    if (labels)
        for (int i = 0; i < o.len; i++)
            free(labels[i]);
    free(labels);
    free(probs);
    return rc;
}
