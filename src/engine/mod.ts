/**
 * The backend profile: which kernels run on this adapter.
 *
 * @module
 */

export type {
  ArgmaxKind,
  AttentionKind,
  BackendOptions,
  BackendProfile,
  HeadScreenMode,
  MatmulFamily,
} from "./backend.ts";
