import { MemoryAccountStore } from '../../src/adapters/memory/memory-account-store.js';
import { accountStoreContract } from './account-store.contract.js';

accountStoreContract('memory', async () => new MemoryAccountStore());
