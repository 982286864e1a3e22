import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { BasicAuth, parseBasicAuth } from './basic-auth.js';

const header = (text: string) => `Basic ${Buffer.from(text).toString('base64')}`;

describe('parseBasicAuth', () => {
  it('reads user and password as Go does', () => {
    expect(parseBasicAuth(header('alice:s3cr:et'))).toEqual({ user: 'alice', password: 's3cr:et' });
    expect(parseBasicAuth(`bAsIc ${Buffer.from('a:').toString('base64')}`)).toEqual({
      user: 'a',
      password: '',
    });
    expect(parseBasicAuth(header('ünï:cödé'))).toEqual({ user: 'ünï', password: 'cödé' });
  });

  it('refuses what is not basic auth', () => {
    for (const bad of [
      undefined,
      '',
      'Basic',
      'Bearer abc',
      header('no-colon'),
      'Basic !!!!',
      'Basic YWxpY2U6cw', // missing padding: Go's StdEncoding refuses it
    ]) {
      expect(parseBasicAuth(bad), String(bad)).toBeUndefined();
    }
  });
});

describe('BasicAuth', () => {
  const users = { alice: bcrypt.hashSync('right', 4), bob: bcrypt.hashSync('other', 4) };

  it('grants the right password only to its user', async () => {
    const auth = new BasicAuth(users);
    expect(await auth.check(header('alice:right'))).toBe('ok');
    expect(await auth.check(header('alice:wrong'))).toBe('denied');
    expect(await auth.check(header('bob:right'))).toBe('denied');
    expect(await auth.check(header('carol:right'))).toBe('denied');
    expect(await auth.check(undefined)).toBe('denied');
  });

  it('never grants an unknown user, even with the password of the decoy hash', async () => {
    const auth = new BasicAuth(users);
    expect(await auth.check(header('nobody:fakepassword'))).toBe('denied');
    expect(await auth.check(header('nobody:fakepassword'))).toBe('denied');
  });

  it('checks concurrent requests with the same credentials once, and refuses a flood of others as busy', async () => {
    const auth = new BasicAuth({ alice: bcrypt.hashSync('right', 8) }, { maxWaiting: 4 });
    const same = await Promise.all(
      Array.from({ length: 20 }, () => auth.check(header('alice:right'))),
    );
    expect(same).toEqual(Array.from({ length: 20 }, () => 'ok'));
    const guesses = await Promise.all(
      Array.from({ length: 10 }, (_v, i) => auth.check(header(`alice:guess${i}`))),
    );
    expect(guesses.filter((g) => g === 'denied')).toHaveLength(4);
    expect(guesses.filter((g) => g === 'busy')).toHaveLength(6);
    // The granted verdict is cached: no queue for it, even while guesses wait.
    const during = Promise.all(
      Array.from({ length: 4 }, (_v, i) => auth.check(header(`alice:more${i}`))),
    );
    expect(await auth.check(header('alice:right'))).toBe('ok');
    expect(await during).toEqual(['denied', 'denied', 'denied', 'denied']);
  });

  it('keeps a granted verdict while refused ones fill their cache', async () => {
    const auth = new BasicAuth(users, { cacheSize: 5, maxWaiting: 100 });
    expect(await auth.check(header('alice:right'))).toBe('ok');
    await Promise.all(Array.from({ length: 30 }, (_v, i) => auth.check(header(`alice:x${i}`))));
    const granted = (auth as unknown as { granted: Map<string, true> }).granted;
    expect(granted.size).toBe(1);
  });
});
