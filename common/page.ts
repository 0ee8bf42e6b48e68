// The page: the unit of guest memory, of every host mapping of it and of every snapshot file.

/** Guest page size: every region, mapping and snapshot file unit is a whole number of pages. */
export const PAGE_SIZE = 4096;
