import { MemorySpillStore } from '../../../src/engine/cache/spillStore';
import { describeSpillStoreConformance } from './spillStoreConformance';

describeSpillStoreConformance('MemorySpillStore', async () => ({ store: new MemorySpillStore(), cleanup: async () => undefined }));
