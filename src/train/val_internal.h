/* Validation inside the training loop (internal to src/train): the log's
 * validation columns and a host copy of the best parameters. */
#ifndef UNET3D_VAL_INTERNAL_H
#define UNET3D_VAL_INTERNAL_H
#include <stddef.h>
#include "unet3d/unet3d.h"

/* Refuses, before any training, a validation volume the net cannot score:
 * other channels, smaller than prediction takes, nothing annotated. */
u3d_status u3d_val_check(const u3d_net_config *c, const u3d_train_volume *v,
                         int ignore_label, u3d_error *err);

/* ",val_mean_fg_iou,val_iou_0,...": appended to the log's header. */
void u3d_val_csv_header(int classes, char *buf, size_t n);
/* The row's validation fields; s NULL: empty ones (no validation there). */
void u3d_val_csv_fields(const u3d_val_score *s, int classes, char *buf,
                        size_t n);
/* Reads the per-class fields of a log row (after its first three); 1 when
 * the row holds a validation. */
int u3d_val_csv_parse(const char *row, int classes, long iteration,
                      u3d_val_score *s);

/* Parameter values and batch-norm statistics on the host. */
typedef struct u3d_net_snapshot {
    float *h;
    size_t n;
} u3d_net_snapshot;

u3d_status u3d_net_snapshot_take(u3d_net *net, u3d_net_snapshot *s,
                                 u3d_error *err);
u3d_status u3d_net_snapshot_restore(u3d_net *net, const u3d_net_snapshot *s,
                                    u3d_error *err);
void u3d_net_snapshot_free(u3d_net_snapshot *s);

#endif
