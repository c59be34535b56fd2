/* Status codes and the error message every fallible call fills. */
#ifndef UNET3D_ERROR_H
#define UNET3D_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum u3d_status {
    U3D_OK = 0,
    U3D_ERR_INVALID_ARG, /* a parameter is out of range or inconsistent */
    U3D_ERR_SHAPE,       /* tensor shapes do not fit the operation */
    U3D_ERR_IO,          /* a file could not be opened, read or written */
    U3D_ERR_FORMAT,      /* a file is ill-formed or of an unsupported kind */
    U3D_ERR_DEVICE,      /* the OpenCL/CUDA runtime reported an error */
    U3D_ERR_OOM,         /* host or device memory exhausted */
    U3D_ERR_UNSUPPORTED, /* valid request this build or backend cannot do */
    U3D_ERR_NUMERIC      /* NaN/Inf or another numeric failure */
} u3d_status;

/* Filled by the call that fails; msg is a sentence a user can act on. */
typedef struct u3d_error {
    u3d_status code;
    char msg[1024];
} u3d_error;

/* Replaces control characters of s (newlines included) by '?': every
 * message is one line. u3d_seterr and u3d_errprefix apply it. */
void u3d_msg_oneline(char *s);

/* Sets err (may be NULL) and returns code, so callers can write
 * `return u3d_seterr(err, U3D_ERR_SHAPE, "...", ...);`. */
u3d_status u3d_seterr(u3d_error *err, u3d_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prefixes context to an existing message ("loading x.npy: " + msg). */
u3d_status u3d_errprefix(u3d_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

const char *u3d_status_name(u3d_status s);

/* Returns the status of a fallible call from the calling function unless it
 * is U3D_OK: `U3D_TRY(u3d_tensor_create(...));`. */
#define U3D_TRY(x)                                                             \
    do {                                                                       \
        u3d_status u3d_try_st_ = (x);                                          \
        if (u3d_try_st_ != U3D_OK)                                             \
            return u3d_try_st_;                                                \
    } while (0)

/* Stores the status of a fallible call in st and jumps to label unless it is
 * U3D_OK (for functions that release resources at one exit). */
#define U3D_TRY_GOTO(st, label, x)                                             \
    do {                                                                       \
        (st) = (x);                                                            \
        if ((st) != U3D_OK)                                                    \
            goto label;                                                        \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
