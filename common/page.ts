// The page: the unit of guest memory, of every host mapping of it and of every snapshot file.

/** Guest page size: every region, mapping and snapshot file unit is a whole number of pages. */
export const PAGE_SIZE = 4096;

/**
 * x86's large page (a PMD). Guest RAM is mapped at host addresses aligned to it, and the
 * loading-set file keeps large regions at file offsets congruent to their guest offsets modulo
 * it, so the host can map a whole 2 MiB page-cache folio or THP with one page-table entry and
 * KVM can back the guest with one 2 MiB nested-page entry instead of 512 faults.
 */
export const HUGE_PAGE_SIZE = 2 << 20;
