/* Augmentation on OpenCL (cl/augment.cl): control points, the separable
 * B-spline field in two passes (along w, then h), one sampling pass that
 * finishes the field along d, maps and samples, then the gray-value pass
 * (skipped when it would change nothing). */
#include "augment/augment_internal.h"
#include "backends/opencl/opencl.h"

#define LWS 256

typedef struct aug_bufs {
    void *k, *phi, *p1, *p2;
} aug_bufs;

static void bufs_free(u3d_backend *be, aug_bufs *b)
{
    /* safe while kernels are queued: OpenCL keeps a buffer alive until the
     * commands using it have finished */
    void *all[4] = {b->k, b->phi, b->p1, b->p2};
    for (int i = 0; i < 4; i++)
        if (all[i])
            be->ops->buffer_free(be, all[i]);
}

static u3d_status bufs_alloc(u3d_backend *be, const aug_consts *k,
                             aug_bufs *b, u3d_error *err)
{
    U3D_TRY(be->ops->buffer_alloc(be, sizeof *k, &b->k, err));
    U3D_TRY(be->ops->buffer_write(be, b->k, 0, sizeof *k, k, err));
    U3D_TRY(be->ops->buffer_alloc(be, u3d_aug_phi_count(k) * 4, &b->phi, err));
    U3D_TRY(be->ops->buffer_alloc(be, u3d_aug_p1_count(k) * 4, &b->p1, err));
    return be->ops->buffer_alloc(be, u3d_aug_p2_count(k) * 4, &b->p2, err);
}

/* Launches `name` over n items with buffer arguments args[0..nargs). */
static u3d_status launch(u3d_cl *cl, const char *name, size_t n,
                         cl_mem *args, int nargs, u3d_error *err)
{
    cl_kernel kern;
    const char *opts = cl->is_cpu ? "-DAUG_ALWAYS_INLINE" : NULL;
    U3D_TRY(u3d_cl_kernel_get(cl, "augment", name, opts, &kern, err));
    for (int i = 0; i < nargs; i++) {
        cl_int rc = clSetKernelArg(kern, (cl_uint)i, sizeof(cl_mem), &args[i]);
        if (rc != CL_SUCCESS)
            return u3d_cl_check(rc, "clSetKernelArg(augment)", err);
    }
    size_t l = LWS, kmax = 0;
    cl_int rc = clGetKernelWorkGroupInfo(kern, cl->device,
                                         CL_KERNEL_WORK_GROUP_SIZE,
                                         sizeof kmax, &kmax, NULL);
    if (rc != CL_SUCCESS)
        return u3d_cl_check(rc, "clGetKernelWorkGroupInfo", err);
    while (l > 1 && (l > kmax || l > cl->max_wg)) /* a power of two */
        l /= 2;
    return u3d_cl_launch(cl, kern, name, 1, &n, &l, err);
}

static u3d_status run(u3d_cl *cl, const aug_consts *k, const aug_bufs *b,
                      const u3d_tensor *si, const u3d_tensor *sl,
                      u3d_tensor *oi, u3d_tensor *ol, u3d_error *err)
{
    cl_mem km = b->k, phi = b->phi, p1 = b->p1, p2 = b->p2;
    cl_mem a1[2] = {km, phi};
    U3D_TRY(launch(cl, "aug_control_points", u3d_aug_phi_count(k) / 3, a1, 2,
                   err));
    cl_mem a2[3] = {km, phi, p1};
    U3D_TRY(launch(cl, "aug_field_w_pass", u3d_aug_p1_count(k), a2, 3, err));
    cl_mem a3[3] = {km, p1, p2};
    U3D_TRY(launch(cl, "aug_field_h_pass", u3d_aug_p2_count(k), a3, 3, err));
    /* without labels the label arguments are NULL buffers, never read */
    cl_mem a4[6] = {km,  u3d_cl_mem(si), sl ? u3d_cl_mem(sl) : NULL,
                    p2,  u3d_cl_mem(oi), ol ? u3d_cl_mem(ol) : NULL};
    size_t n = (size_t)k->d * k->h * k->w;
    U3D_TRY(launch(cl, "aug_sample", n, a4, 6, err));
    if (!k->use_gray)
        return U3D_OK;
    cl_mem a5[2] = {km, u3d_cl_mem(oi)};
    return launch(cl, "aug_gray_pass", u3d_aug_gray_count(k), a5, 2, err);
}

u3d_status u3d_cl_augment_sample(u3d_backend *be, const aug_consts *k,
                             const u3d_tensor *src_image,
                             const u3d_tensor *src_labels,
                             u3d_tensor *out_image, u3d_tensor *out_labels,
                             u3d_error *err)
{
    aug_bufs b = {0};
    u3d_status st = bufs_alloc(be, k, &b, err);
    if (!st)
        st = run(u3d_cl_of(be), k, &b, src_image, src_labels, out_image,
                 out_labels, err);
    bufs_free(be, &b);
    return st;
}
