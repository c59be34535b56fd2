/* Output of `unet3d bench`: a table for people, JSON for scripts. */
#include <math.h>
#include <stdio.h>
#include "bench.h"
#include "core/json_out.h"

static const char *state_name(u3d_bench_state s)
{
    switch (s) {
    case U3D_BENCH_OK: return "ok";
    case U3D_BENCH_UNSUPPORTED: return "unsupported";
    case U3D_BENCH_SKIPPED: return "skipped";
    case U3D_BENCH_FAILED: return "error";
    }
    return "error";
}

static void table_row(const u3d_bench_row *w, FILE *out)
{
    if (w->state != U3D_BENCH_OK) {
        fprintf(out, "%-26s %-34s %s%s%s\n", w->name, w->shape,
                state_name(w->state), w->note[0] ? ": " : "", w->note);
        return;
    }
    char pct[16] = "-", vs[16] = "-";
    if (w->pct_peak >= 0)
        snprintf(pct, sizeof pct, "%.1f%%", w->pct_peak);
    if (w->vs_sgemm >= 0)
        snprintf(vs, sizeof vs, "%.2f", w->vs_sgemm);
    fprintf(out, "%-26s %-34s %10.*f %9.1f %-7s %7s %8s%s%s\n", w->name,
            w->shape, w->ms < 0.1 ? 4 : 3, w->ms, w->rate,
            w->is_flops ? "GFLOP/s" : "GB/s", pct, vs,
            w->config[0] ? "  " : "", w->config);
}

void u3d_bench_print_table(const u3d_bench_report *r, FILE *out)
{
    fprintf(out, "device: %s (%s backend)\n", r->device, r->backend);
    if (r->peak_gflops > 0)
        fprintf(out, "FMA peak: %.1f GFLOP/s (%s)%s\n", r->peak_gflops,
                r->peak_config,
                r->peak_remeasured ? ", measured again after rows above it"
                                   : "");
    if (r->peak_theoretical > 0)
        fprintf(out, "theoretical: %.1f GFLOP/s (%s)\n", r->peak_theoretical,
                r->peak_theoretical_how);
    if (r->above_peak[0])
        fprintf(out, "ABOVE THE MEASURED PEAK: %s: their FLOP count "
                     "includes work the kernel skips, or the peak kernel "
                     "misses the device's best\n", r->above_peak);
    if (r->peak_gbs > 0)
        fprintf(out, "copy bandwidth: %.1f GB/s\n", r->peak_gbs);
    if (r->peak_note[0])
        fprintf(out, "peak not measured: %s\n", r->peak_note);
    if (r->sgemm_best > 0)
        fprintf(out, "best CLBlast SGEMM: %.1f GFLOP/s\n", r->sgemm_best);
    fprintf(out, "%%peak: of the FMA peak (GFLOP/s rows) or of the copy "
                 "bandwidth (GB/s rows); vs_sgemm: GFLOP/s / best SGEMM\n");
    for (int i = 0; i < r->nops; i++)
        if (r->ops[i].work_done > 0) {
            fprintf(out, "winograd rows: GFLOP/s of the direct convolution's "
                         "FLOP count, %%peak of the FLOPs executed\n");
            break;
        }
    fputc('\n', out);
    fprintf(out, "%-26s %-34s %10s %9s %-7s %7s %8s  %s\n", "name", "shape",
            "ms", "rate", "unit", "%peak", "vs_sgemm", "config");
    for (int i = 0; i < r->nsgemm; i++)
        table_row(&r->sgemm[i], out);
    for (int i = 0; i < r->nops; i++)
        table_row(&r->ops[i], out);
}

/* A number, or null when unknown (negative or zero marks) or not finite. */
static void json_num(double v, int known, FILE *out)
{
    if (known && isfinite(v))
        fprintf(out, "%.6g", v);
    else
        fputs("null", out);
}

static void json_row(const u3d_bench_row *w, FILE *out)
{
    int ok = w->state == U3D_BENCH_OK;
    fputs("{\"name\": ", out);
    u3d_json_str(out, w->name);
    fputs(", \"shape\": ", out);
    u3d_json_str(out, w->shape);
    fprintf(out, ", \"status\": \"%s\", \"ms\": ", state_name(w->state));
    json_num(w->ms, ok, out);
    fprintf(out, ", \"%s\": ", w->is_flops ? "gflops" : "gbs");
    json_num(w->rate, ok, out);
    fputs(", \"pct_peak\": ", out);
    json_num(w->pct_peak, ok && w->pct_peak >= 0, out);
    if (w->work_done > 0) /* GFLOP/s executed, when not those of "gflops" */
        fprintf(out, ", \"gflops_executed\": %.6g",
                ok && w->work > 0 ? w->rate * w->work_done / w->work : 0.0);
    fputs(", \"vs_sgemm\": ", out);
    json_num(w->vs_sgemm, ok && w->vs_sgemm >= 0, out);
    fprintf(out, ", \"reps\": %d", w->reps);
    if (w->config[0]) {
        fputs(", \"config\": ", out);
        u3d_json_str(out, w->config);
    }
    if (w->note[0]) {
        fputs(", \"note\": ", out);
        u3d_json_str(out, w->note);
    }
    fputc('}', out);
}

void u3d_bench_print_json(const u3d_bench_report *r, FILE *out)
{
    fputs("{\"device\": ", out);
    u3d_json_str(out, r->device);
    fputs(", \"backend\": ", out);
    u3d_json_str(out, r->backend);
    fputs(", \"peak_gflops\": ", out);
    json_num(r->peak_gflops, r->peak_gflops > 0, out);
    fputs(", \"peak_config\": ", out);
    u3d_json_str(out, r->peak_config);
    fputs(", \"peak_gbs\": ", out);
    json_num(r->peak_gbs, r->peak_gbs > 0, out);
    if (r->peak_note[0]) {
        fputs(", \"peak_note\": ", out);
        u3d_json_str(out, r->peak_note);
    }
    fputs(", \"peak_theoretical_gflops\": ", out);
    json_num(r->peak_theoretical, r->peak_theoretical > 0, out);
    fprintf(out, ", \"peak_remeasured\": %s",
            r->peak_remeasured ? "true" : "false");
    fputs(", \"above_peak\": ", out);
    u3d_json_str(out, r->above_peak);
    fputs(",\n \"sgemm_gflops\": {", out);
    for (int i = 0; i < r->nsgemm; i++) {
        const u3d_bench_row *w = &r->sgemm[i];
        fputs(i ? ", " : "", out);
        u3d_json_str(out, w->name);
        fputs(": ", out);
        json_num(w->rate, w->state == U3D_BENCH_OK, out);
    }
    fputs("},\n \"sgemm_best_gflops\": ", out);
    json_num(r->sgemm_best, r->sgemm_best > 0, out);
    fputs(",\n \"sgemm\": [", out);
    for (int i = 0; i < r->nsgemm; i++) {
        fputs(i ? ",\n  " : "\n  ", out);
        json_row(&r->sgemm[i], out);
    }
    fputs("],\n \"ops\": [", out);
    for (int i = 0; i < r->nops; i++) {
        fputs(i ? ",\n  " : "\n  ", out);
        json_row(&r->ops[i], out);
    }
    fputs("]}\n", out);
}
