import type { Command } from 'commander';
export function registerBenchCommands(_p: Command): void {}
