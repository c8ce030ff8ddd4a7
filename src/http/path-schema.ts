/** `pathNormalization` (mesh-wide, as Istio's `meshConfig.pathNormalization`). See docs/context.md. */
import { z } from 'zod';

export const pathNormalizationSchema = z
  .strictObject({
    /** NONE, BASE, MERGE_SLASHES (default) or DECODE_AND_MERGE_SLASHES, as in Istio. */
    normalization: z.enum(['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES']).optional(),
    /** `%2F` / `%5C` in a path: REJECT_REQUEST (default), KEEP_UNCHANGED, UNESCAPE_AND_FORWARD. */
    escapedSlashes: z.enum(['REJECT_REQUEST', 'KEEP_UNCHANGED', 'UNESCAPE_AND_FORWARD']).optional(),
  })
  .superRefine((v, ctx) => {
    if (
      v.normalization === 'DECODE_AND_MERGE_SLASHES' &&
      v.escapedSlashes !== undefined &&
      v.escapedSlashes !== 'UNESCAPE_AND_FORWARD'
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['escapedSlashes'],
        input: v.escapedSlashes,
        message:
          'conflicts with normalization DECODE_AND_MERGE_SLASHES, which unescapes %2F and %5C; use MERGE_SLASHES with this action',
      });
    }
  });

export type PathNormalizationSettings = z.output<typeof pathNormalizationSchema>;
