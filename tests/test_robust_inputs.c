/* Crafted input files (issue #14): each reproducer gives a one-line error
 * naming the file, or reads exactly what the file describes; never a memory
 * error (this test also runs in the ASan/UBSan build). */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/files.h"
#include "golden/npy.h"
#include "test_util.h"
#include "unet3d/volume_io.h"

static char path[256];

/* An ImageJ-described stack of n 8-bit pages of s x s whose description is
 * desc (on the first page, as ImageJ writes it). */
static void write_imagej(const char *p, int n, int s, const char *desc)
{
    TIFF *t = TIFFOpen(p, "w");
    assert_non_null(t);
    unsigned char *row = calloc((size_t)s, 1);
    for (int k = 0; k < n; k++) {
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, s);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, s);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, s);
        if (k == 0)
            TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, desc);
        for (int y = 0; y < s; y++) {
            memset(row, (k + y) % 3, (size_t)s);
            assert_true(TIFFWriteScanline(t, row, (uint32_t)y, 0) >= 0);
        }
        assert_int_equal(TIFFWriteDirectory(t), 1);
    }
    TIFFClose(t);
    free(row);
}

/* ImageJ's images= smaller than the page count: the buffers are sized from
 * the description, so only its pages are read (was a heap overflow). */
static void imagej_images_below_page_count(void **state)
{
    (void)state;
    write_imagej(path, 24, 24, "ImageJ=1.53t\nimages=5\nslices=5\n");
    u3d_error err = {0};
    u3d_labels l;
    t_ok(u3d_tiff_read_labels(path, &l, &err), &err, "labels");
    assert_int_equal(l.d, 5);
    for (int z = 0; z < 5; z++)
        assert_int_equal(l.data[(size_t)z * 24 * 24 + 24], (z + 1) % 3);
    u3d_labels_free(&l);
    u3d_volume v;
    t_ok(u3d_tiff_read_volume(path, &v, &err), &err, "volume");
    assert_int_equal(v.d, 5);
    u3d_volume_free(&v);
    u3d_tiff_stream *s;
    float plane[24 * 24];
    t_ok(u3d_tiff_stream_open(path, &s, &v, &err), &err, "stream");
    assert_int_equal(v.d, 5);
    for (int z = 0; z < 5; z++)
        t_ok(u3d_tiff_stream_read(s, z, plane, &err), &err, "plane");
    assert_int_not_equal(u3d_tiff_stream_read(s, 5, plane, &err), U3D_OK);
    u3d_tiff_stream_close(s);
}

/* images= larger than the pages there are: a truncated file, said so. */
static void imagej_images_above_page_count(void **state)
{
    (void)state;
    write_imagej(path, 3, 16, "ImageJ=1.53t\nimages=9\nslices=9\n");
    u3d_error err = {0};
    u3d_labels l;
    assert_int_not_equal(u3d_tiff_read_labels(path, &l, &err), U3D_OK);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "images=9"));
}

/* ---- model files (#14 item 13 and the fuzzer's huge_architecture) ---- */

static char model[256];

/* A tiny model saved through the library (ref backend). */
static void save_tiny_model(const char *p)
{
    u3d_error err = {0};
    u3d_backend *be;
    t_ok(u3d_backend_ref_create(&be, &err), &err, "ref");
    u3d_model_meta m;
    u3d_model_meta_defaults(&m);
    t_ok(u3d_net_preset("tiny", &m.net, &err), &err, "preset");
    m.net.levels = 2;
    m.net.base_channels = 2;
    m.net.in_channels = 1;
    m.net.classes = 2;
    /* the optional keys present, so that edits reach them */
    m.optimizer = U3D_OPTIM_ADAM;
    m.adam_step = 3;
    m.aug_custom = 1;
    u3d_augment_params_default(&m.aug);
    m.aug.p_deform = 0.25f;
    m.class_bias[1] = -0.75f;
    m.holdout = 0.125;
    u3d_net *net;
    t_ok(u3d_net_create(be, &m.net, &net, &err), &err, "net");
    t_ok(u3d_net_init(net, 1, &err), &err, "init");
    t_ok(u3d_model_save(p, net, &m, 0, &err), &err, "save");
    u3d_net_destroy(net);
    u3d_backend_destroy(be);
}

/* Rewrites the value of key in the model's metadata (checksum anew). */
static void edit_meta(const char *p, const char *key, const char *value)
{
    u3d_error err = {0};
    u3d_ckpt c;
    t_ok(u3d_ckpt_read(p, &c, &err), &err, "read");
    size_t n = strlen(c.meta) + strlen(value) + 64;
    char *meta = calloc(n, 1), *line = c.meta;
    size_t kl = strlen(key);
    while (*line) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
        if (!strncmp(line, key, kl) && line[kl] == ' ')
            snprintf(meta + strlen(meta), n - strlen(meta), "%s %s\n", key,
                     value);
        else
            strncat(meta, line, len);
        line += len;
    }
    free(c.meta);
    c.meta = meta;
    t_ok(u3d_ckpt_write(p, &c, &err), &err, "write");
    u3d_ckpt_free(&c);
}

static void expect_model_refused(const char *key, const char *value,
                                 const char *want)
{
    save_tiny_model(model);
    edit_meta(model, key, value);
    u3d_error err = {0};
    u3d_backend *be;
    t_ok(u3d_backend_ref_create(&be, &err), &err, "ref");
    u3d_net *net = NULL;
    u3d_model_meta m;
    u3d_status st = u3d_model_load(model, be, &net, &m, &err);
    u3d_backend_destroy(be);
    if (st == U3D_OK)
        fail_msg("%s %s: loaded, expected '%s'", key, value, want);
    assert_null(net);
    if (!strstr(err.msg, model) || !strstr(err.msg, want))
        fail_msg("%s %s: message '%s' lacks the file or '%s'", key, value,
                 err.msg, want);
}

static void model_metadata_edits_refused(void **state)
{
    (void)state;
    expect_model_refused("padding", "diagonal", "unknown padding 'diagonal'");
    expect_model_refused("batchnorm", "sometimes",
                         "unknown batchnorm 'sometimes'");
    expect_model_refused("normalization", "loudness 1 2",
                         "unknown normalization 'loudness'");
    /* another network than the stored one */
    expect_model_refused("levels", "1", "is not part of the network");
    expect_model_refused("batchnorm", "none", "is not part of the network");
    /* numbers that would give silently wrong results */
    expect_model_refused("normalization", "percentile nan 99.8",
                         "normalization percentiles");
    expect_model_refused("class_weights", "1,-3", "class_weights");
    expect_model_refused("levels", "4294967298", "not a number in range");
    expect_model_refused("ignore_label", "70000", "ignore_label");
    /* the optimizer's state (#15) */
    expect_model_refused("optimizer", "rmsprop", "unknown optimizer 'rmsprop'");
    expect_model_refused("sampling", "random", "unknown sampling 'random'");
    /* densify's calibrated decision: one finite offset per class */
    expect_model_refused("class_bias", "0,-1,2", "'class_bias' is not 2");
    expect_model_refused("class_bias", "0", "'class_bias' is not 2");
    expect_model_refused("class_bias", "0,nan", "'class_bias' is not 2");
    expect_model_refused("class_bias", "0,-25", "'class_bias' is not 2");
    expect_model_refused("class_bias", "0,1x", "'class_bias' is not 2");
    /* train's held-out share (a resumed run must hold out the same) */
    expect_model_refused("holdout", "0.6", "'holdout' is not a share");
    expect_model_refused("holdout", "-0.1", "'holdout' is not a share");
    expect_model_refused("holdout", "nan", "'holdout' is not a share");
    expect_model_refused("holdout", "0.1x", "'holdout' is not a share");
    expect_model_refused("holdout", "", "'holdout' is not a share");
    expect_model_refused("adam", "0.9,0.999", "'adam' is not three numbers");
    expect_model_refused("adam", "0.9,0.999,1e-8,4",
                         "'adam' is not three numbers");
    expect_model_refused("adam", "0.9,1.5,1e-8", "optimizer settings");
    expect_model_refused("adam", "nan,0.999,1e-8", "optimizer settings");
    expect_model_refused("adam", "0.9,0.999,0", "optimizer settings");
    expect_model_refused("adam_step", "-3", "'adam_step' is not a count");
    expect_model_refused("adam_step", "12x", "'adam_step' is not a count");
    /* the augmentation's per-transform probabilities (session 7's tail of
     * four numbers after fill_value) */
    const char *base = "4 4 4 32 32 32 15 15 15 0.9 1.1 0.9 1.1 1 1 1 "
                       "0 1 0.7 1.5 0.8 1.2 -0.1 0.1 0 0.02 0 0";
    char v[512];
    snprintf(v, sizeof v, "%s 0.2 0.2 0.2", base);
    expect_model_refused("augment_params", v,
                         "unreadable augmentation parameters");
    snprintf(v, sizeof v, "%s 0.2 0.2 0.2 0.2 0.2", base);
    expect_model_refused("augment_params", v,
                         "unreadable augmentation parameters");
    snprintf(v, sizeof v, "%s 0.2 0.2 x 0.2", base);
    expect_model_refused("augment_params", v,
                         "unreadable augmentation parameters");
    snprintf(v, sizeof v, "%s 0.2 1.5 0.2 0.2", base);
    expect_model_refused("augment_params", v,
                         "augmentation parameters are out of range");
    snprintf(v, sizeof v, "%s 0.2 nan 0.2 0.2", base);
    expect_model_refused("augment_params", v,
                         "augmentation parameters are out of range");
    /* a few bytes describing gigabytes: refused before allocating */
    expect_model_refused("base_channels", "4096", "holds only");
}

/* ---- golden fixtures (#14 item 7) ---- */

static char gdir[256];

/* A copy of the shared relu fixture in gdir whose y.npy is replaced by
 * count values v (count 0: the fixture's own count). */
static int relu_case(float v, size_t count)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s/relu' '%s'", gdir,
             U3D_GOLDEN_DIR, gdir);
    if (system(cmd) != 0)
        return 0;
    char p[400];
    snprintf(p, sizeof p, "%s/y.npy", gdir);
    u3d_npy y;
    u3d_error err = {0};
    t_ok(u3d_npy_load(p, &y, &err), &err, "y.npy");
    if (count) {
        y.ndim = 1;
        y.dims[0] = y.count = count;
        free(y.data);
        y.data = malloc(count * sizeof(float));
    }
    for (size_t i = 0; i < y.count; i++)
        ((float *)y.data)[i] = v;
    t_ok(u3d_npy_save(p, &y, &err), &err, "save");
    u3d_npy_free(&y);
    return 1;
}

/* Runs `unet3d golden gdir`; returns its exit status, output in out. */
static int golden_run(char *out, size_t n)
{
    char cmd[600], po[300];
    snprintf(po, sizeof po, "%s.out", gdir);
    snprintf(cmd, sizeof cmd, "%s/unet3d golden --backend ref '%s' > '%s' 2>&1",
             U3D_BINARY_DIR, gdir, po);
    int rc = system(cmd);
    FILE *f = fopen(po, "r");
    size_t k = f ? fread(out, 1, n - 1, f) : 0;
    out[k] = 0;
    if (f)
        fclose(f);
    unlink(po);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void golden_fails_on_bad_fixtures(void **state)
{
    (void)state;
    char out[4096];
    if (!relu_case(0, 0))
        skip(); /* no shared fixtures beside the repository */
    assert_int_equal(golden_run(out, sizeof out), 1); /* y all 0: wrong */
    /* NaN expected values cannot pass with max_abs 0 */
    assert_true(relu_case(NAN, 0));
    if (golden_run(out, sizeof out) != 1 || !strstr(out, "non-finite"))
        fail_msg("an all-NaN expected tensor passed: %s", out);
    /* a count mismatch names the fixture's real count */
    assert_true(relu_case(1, 7));
    if (golden_run(out, sizeof out) != 1 ||
        !strstr(out, "y.npy holds 7 float values"))
        fail_msg("count mismatch message: %s", out);
    /* more than 64 key lines: said so, not "no 'op' line" */
    char p[400];
    snprintf(p, sizeof p, "%s/case.txt", gdir);
    FILE *f = fopen(p, "a");
    for (int i = 0; i < 70; i++)
        fprintf(f, "key%d %d\n", i, i);
    fclose(f);
    if (golden_run(out, sizeof out) != 1 || !strstr(out, "more than 64"))
        fail_msg("too many keys: %s", out);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", gdir);
    assert_int_equal(system(cmd), 0);
}

/* A copy of the repository's Adam fixture in gdir, case.txt edited by the
 * sed expression e. */
static void adam_copy(const char *e)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && cp -r '%s/data/golden/adam_weight_decay' '%s' "
             "&& sed -i '%s' '%s/case.txt'",
             gdir, U3D_SOURCE_DIR, gdir, e, gdir);
    assert_int_equal(system(cmd), 0);
}

/* The Adam fixture edited by e must fail with want in the output. */
static void adam_case_fails(const char *e, const char *want)
{
    char out[4096];
    adam_copy(e);
    if (golden_run(out, sizeof out) != 1 || !strstr(out, want))
        fail_msg("%s: want '%s', got: %s", e, want, out);
}

/* Adam's fixture: it passes as shipped; variants not implemented, a step
 * that is no count and a missing key are refused with the file named. */
static void golden_adam_fixture_checks(void **state)
{
    (void)state;
    char cmd[1400], out[4096];
    adam_copy("s/^op adam$/op adam/");
    if (golden_run(out, sizeof out) != 0 || !strstr(out, "PASS"))
        fail_msg("the shipped fixture: %s", out);
    adam_case_fails("s/^amsgrad 0/amsgrad 1/", "amsgrad 1 (only 0 is implemented)");
    adam_case_fails("s/^maximize 0/maximize 1/", "maximize 1 (only 0");
    adam_case_fails("s/^step 7/step 0/", "step 0 is not a count");
    adam_case_fails("s/^step 7/step 2.5/", "step 2.5 is not a count");
    adam_case_fails("/^beta2 /d", "key 'beta2' missing");
    /* the moments' values matter: a wrong m_out fails */
    adam_copy("s/^op adam$/op adam/");
    snprintf(cmd, sizeof cmd, "cp '%s/m_in.npy' '%s/m_out.npy'", gdir, gdir);
    assert_int_equal(system(cmd), 0);
    if (golden_run(out, sizeof out) != 1 || !strstr(out, "m_out"))
        fail_msg("a wrong m_out passed: %s", out);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", gdir);
    assert_int_equal(system(cmd), 0);
}

/* ---- outputs (#14 items 9 and 10) ---- */

static char odir[256];

static int count_tmp(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '\\.tmp-' > '%s.n'", dir,
             dir);
    if (system(cmd) < 0)
        return -1;
    char p[300];
    snprintf(p, sizeof p, "%s.n", dir);
    FILE *f = fopen(p, "r");
    int n = -1;
    if (f && fscanf(f, "%d", &n) != 1)
        n = -1;
    if (f)
        fclose(f);
    unlink(p);
    return n;
}

static u3d_labels small_labels(void)
{
    u3d_labels l;
    u3d_error err = {0};
    t_ok(u3d_labels_alloc(2, 3, 4, &l, &err), &err, "labels");
    return l;
}

/* A writer never replaces a FIFO (or device) by a regular file. */
static void writers_refuse_non_regular_targets(void **state)
{
    (void)state;
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/out.tif", odir);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    u3d_labels l = small_labels();
    u3d_error err = {0};
    assert_int_not_equal(u3d_tiff_write_labels(fifo, &l, &err), U3D_OK);
    assert_non_null(strstr(err.msg, "not a regular file"));
    u3d_labels_free(&l);
    unsigned char px[4] = {0};
    snprintf(fifo, sizeof fifo, "%s/out.png", odir);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    assert_int_not_equal(u3d_png_write_gray(fifo, 2, 2, px, &err), U3D_OK);
    struct stat sb;
    assert_int_equal(stat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    assert_int_equal(count_tmp(odir), 0);
}

/* SIGKILL leaves a temporary file: the next write of the same target
 * removes it (its process is gone) and keeps a live process's. */
static void stale_temporaries_swept(void **state)
{
    (void)state;
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    assert_true(dead > 0);
    waitpid(dead, NULL, 0);
    char target[300], stale[400], live[400];
    snprintf(target, sizeof target, "%s/seg.tif", odir);
    snprintf(stale, sizeof stale, "%s.tmp-%ld-0", target, (long)dead);
    snprintf(live, sizeof live, "%s.tmp-%ld-0", target, (long)getppid());
    FILE *f = fopen(stale, "w");
    fclose(f);
    f = fopen(live, "w");
    fclose(f);
    u3d_labels l = small_labels();
    u3d_error err = {0};
    t_ok(u3d_tiff_write_labels(target, &l, &err), &err, "write");
    u3d_labels_free(&l);
    assert_int_not_equal(access(stale, F_OK), 0);
    assert_int_equal(access(live, F_OK), 0);
    unlink(live);
}

/* SIGTERM and SIGINT during a write remove its temporary file. */
static void signals_remove_temporaries(void **state)
{
    (void)state;
    static const int sigs[] = {SIGTERM, SIGINT};
    for (int k = 0; k < 2; k++) {
        pid_t c = fork();
        if (c == 0) {
            u3d_outfile_cleanup_on_signals();
            char target[300];
            snprintf(target, sizeof target, "%s/model.u3d", odir);
            u3d_outfile o;
            if (u3d_outfile_open(&o, target, NULL))
                _exit(3);
            raise(sigs[k]); /* as a kill in the middle of the write */
            _exit(4);
        }
        int status = 0;
        waitpid(c, &status, 0);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), sigs[k]);
        assert_int_equal(count_tmp(odir), 0);
    }
}

/* A Zarr output is a folder written beside its target: SIGTERM in the
 * middle removes it with its chunks, and one left by a killed process is
 * removed at the next write of the same target. */
static void zarr_temporaries_removed(void **state)
{
    (void)state;
    char target[300];
    snprintf(target, sizeof target, "%s/seg.zarr", odir);
    pid_t c = fork();
    if (c == 0) {
        u3d_outfile_cleanup_on_signals();
        u3d_vsink *s;
        uint16_t plane[12] = {0};
        if (u3d_vsink_open(target, 1, 3, 3, 4, 16, NULL, NULL, 0, 1,
                           NULL, &s, NULL) ||
            u3d_vsink_plane_u16(s, plane, NULL))
            _exit(3);
        raise(SIGTERM); /* chunks written, output not complete */
        _exit(4);
    }
    int status = 0;
    waitpid(c, &status, 0);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(count_tmp(odir), 0);
    assert_int_not_equal(access(target, F_OK), 0);
    /* SIGKILL leaves the folder; the next write removes it */
    c = fork();
    if (c == 0) {
        u3d_vsink *s;
        uint16_t plane[12] = {0};
        if (u3d_vsink_open(target, 1, 3, 3, 4, 16, NULL, NULL, 0, 1,
                           NULL, &s, NULL) ||
            u3d_vsink_plane_u16(s, plane, NULL))
            _exit(3);
        raise(SIGKILL);
        _exit(4);
    }
    waitpid(c, &status, 0);
    assert_int_equal(count_tmp(odir), 1);
    u3d_labels l = small_labels();
    u3d_error err = {0};
    t_ok(u3d_vio_write_labels(target, &l, NULL, &err), &err, "write");
    u3d_labels_free(&l);
    assert_int_equal(count_tmp(odir), 0);
    struct stat sb;
    assert_int_equal(stat(target, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
}

/* #14 item 3: sizes near INT_MAX (from options or files) neither overflow
 * (UBSan build) nor loop for minutes; the errors say why. */
static void huge_sizes_refused(void **state)
{
    (void)state;
    u3d_net_config c;
    u3d_error err = {0};
    t_ok(u3d_net_preset("paper", &c, &err), &err, "preset");
    int below, above;
    assert_int_equal(u3d_net_valid_size(&c, INT_MAX, &below, &above), 0);
    assert_true(below > 0 && below <= U3D_NET_MAX_INPUT);
    int in[3] = {INT_MAX, INT_MAX, INT_MAX}, out[3];
    assert_int_not_equal(u3d_net_output_size(&c, in, out, &err), U3D_OK);
    assert_non_null(strstr(err.msg, "voxels per axis"));
    int big[3] = {below, below, below};
    u3d_net_mem m;
    assert_int_not_equal(u3d_net_memory(&c, 1, big, &m, &err), U3D_OK);
    assert_non_null(strstr(err.msg, "beyond"));
}

/* #14 item 9: a FIFO as an input file is refused at once (opening it for
 * reading used to wait for a writer forever). */
static void fifo_inputs_refused(void **state)
{
    (void)state;
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/in.fifo", odir);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    alarm(20); /* a hang fails the test instead of stalling the suite */
    u3d_error err = {0};
    u3d_labels l;
    assert_int_not_equal(u3d_tiff_read_labels(fifo, &l, &err), U3D_OK);
    assert_non_null(strstr(err.msg, "not a regular file"));
    u3d_volume v;
    u3d_tiff_stream *ts;
    assert_int_not_equal(u3d_tiff_stream_open(fifo, &ts, &v, &err), U3D_OK);
    u3d_ckpt c;
    assert_int_not_equal(u3d_ckpt_read(fifo, &c, &err), U3D_OK);
    assert_non_null(strstr(err.msg, "not a regular file"));
    u3d_npy n;
    assert_int_not_equal(u3d_npy_load(fifo, &n, &err), U3D_OK);
    alarm(0);
    unlink(fifo);
}

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/u3d_robust_%d.tif", (int)getpid());
    snprintf(model, sizeof model, "/tmp/u3d_robust_%d.u3d", (int)getpid());
    snprintf(gdir, sizeof gdir, "/tmp/u3d_robust_golden_%d", (int)getpid());
    snprintf(odir, sizeof odir, "/tmp/u3d_robust_out_%d", (int)getpid());
    mkdir(odir, 0755);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    unlink(model);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", odir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(imagej_images_below_page_count),
        cmocka_unit_test(imagej_images_above_page_count),
        cmocka_unit_test(model_metadata_edits_refused),
        cmocka_unit_test(golden_fails_on_bad_fixtures),
        cmocka_unit_test(golden_adam_fixture_checks),
        cmocka_unit_test(writers_refuse_non_regular_targets),
        cmocka_unit_test(stale_temporaries_swept),
        cmocka_unit_test(signals_remove_temporaries),
        cmocka_unit_test(zarr_temporaries_removed),
        cmocka_unit_test(huge_sizes_refused),
        cmocka_unit_test(fifo_inputs_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
