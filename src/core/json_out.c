/* Writing JSON by hand (json_out.h). */
#include "core/json_out.h"
#include <math.h>

void u3d_json_esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void u3d_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    u3d_json_esc(f, s);
    fputc('"', f);
}

void u3d_json_num(FILE *f, double v)
{
    if (isnan(v) || isinf(v))
        fputs("null", f);
    else
        fprintf(f, "%.6f", v);
}
