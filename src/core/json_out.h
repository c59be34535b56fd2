/* Writing JSON by hand (the reports of bench, experiment, suggest
 * --simulate): the two pieces every writer needs the same. */
#ifndef UNET3D_JSON_OUT_H
#define UNET3D_JSON_OUT_H
#include <stdio.h>

/* s's characters with quotes, backslashes and control characters
 * escaped (no surrounding quotes). */
void u3d_json_esc(FILE *f, const char *s);
/* s as a JSON string. */
void u3d_json_str(FILE *f, const char *s);
/* v with 6 decimals; NaN and infinities (no JSON number) as null. */
void u3d_json_num(FILE *f, double v);

#endif
