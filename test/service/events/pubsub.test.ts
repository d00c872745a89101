import { MemoryPubSub } from '../../../src/service/events/memoryPubSub';
import { RedisPubSub } from '../../../src/service/events/redisPubSub';
import { describeWithService, REDIS_URL, redisProbe } from '../../helpers/services';
import { runPubSubConformance } from './pubsubConformance';

runPubSubConformance('MemoryPubSub', async () => new MemoryPubSub());

runPubSubConformance(
  'RedisPubSub',
  async () => new RedisPubSub({ url: REDIS_URL, prefix: `fisedit-test-${process.pid}:` }),
  (name, fn) => describeWithService(redisProbe(), name, fn),
);

describe('MemoryPubSub', () => {
  it('forgets a topic when its last subscriber leaves', async () => {
    const ps = new MemoryPubSub();
    const s = await ps.subscribe('t');
    expect(ps.subscriberCount('t')).toBe(1);
    s.close();
    expect(ps.subscriberCount('t')).toBe(0);
  });
});
