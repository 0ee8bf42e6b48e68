// Public API of the FaaSnap loader's pure parts: region scan, working-set groups, loading set
// (computation, file, manifest) and the restore plans. The native side (mmap, mincore, reads)
// lives with the VMM and executes these plans.

export {
  DEFAULT_INTERVAL_THRESHOLD,
  DEFAULT_SIZE_THRESHOLD,
  PAGE_SIZE,
  type MemRegion,
} from './units.js';
export {
  nonZeroPages,
  regionsFromBlocks,
  scanBuffer,
  scanFile,
  type NonZeroScan,
  type RegionScanOptions,
} from './regions.js';
export {
  DEFAULT_MINCORE_SIZE,
  DEFAULT_POLL_MS,
  DEFAULT_SCAN_POLICY,
  GroupRecorder,
  NO_GROUP,
  ScanScheduler,
  shouldScan,
  shouldScanInterval,
  workingSetGroups,
  type Observation,
  type ScanPolicy,
} from './groups.js';
export {
  checkLoadingSetLayout,
  computeLoadingSet,
  layoutLoadingSet,
  loadingSetSize,
  type LoadingSetRegion,
} from './loading-set.js';
export {
  LoadingSetManifestSchema,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  buildLoadingSet,
  checkLoadingSet,
  loadingSetManifest,
  readLoadingSetManifest,
  validateManifest,
  verifyLoadingSet,
  writeLoadingSetFile,
  writeLoadingSetManifest,
  type BuildLoadingSetInput,
  type LoadingSetManifest,
  type ManifestInput,
} from './loading-set-file.js';
export {
  DEFAULT_PREFETCH_CHUNK,
  FAASNAP_VARIANTS,
  mappingPlan,
  prefetchPlan,
  type FaasnapVariant,
  type MapOp,
  type MappingPlanOptions,
  type PrefetchRead,
} from './plan.js';
