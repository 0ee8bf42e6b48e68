#!/usr/bin/env node
// `faasnap`: the one command for people. Each subcommand lives in its own module.

import './require-node.js'; // first: it must run before anything that loads native code
import { Command } from 'commander';
import { isFaasnapError } from '../common/errors.js';
import { registerBenchCommands } from './bench.js';
import { registerDaemonCommands } from './daemon.js';
import { registerDemoCommand } from './demo.js';
import { registerFunctionCommands } from './functions.js';
import { registerGuestCommands } from './guest.js';
import { registerLabCommands } from './lab.js';
import { registerResourceCommands } from './resources.js';
import { registerSnapshotCommands } from './snapshot.js';
import { registerVmCommands } from './vm.js';
import { registerVmBootCommand, registerVmInvokeCommand } from './vm-boot.js';

const program = new Command()
  .name('faasnap')
  .description('Serverless functions in KVM microVMs, started from snapshots')
  .showHelpAfterError();

const vm = registerVmCommands(program);
registerVmBootCommand(vm);
registerVmInvokeCommand(vm);
registerSnapshotCommands(program, vm);
registerBenchCommands(program);
registerDaemonCommands(program);
registerDemoCommand(program);
registerFunctionCommands(program);
registerGuestCommands(program);
registerLabCommands(program);
registerResourceCommands(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  if (isFaasnapError(e)) {
    console.error(`faasnap: ${e.code}: ${e.message}`);
  } else {
    console.error(`faasnap: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }
  process.exitCode = 1;
});
