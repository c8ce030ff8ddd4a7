import { describe, expect, it } from 'vitest';
import { serverNameFor } from './server-name.ts';

describe('serverNameFor', () => {
  it('is the hostname of a Host value, without the port', () => {
    expect(serverNameFor('travels')).toBe('travels');
    expect(serverNameFor('travels:8443')).toBe('travels');
    expect(serverNameFor('api.example.com:443')).toBe('api.example.com');
  });

  it('is empty for IP literals, which are not SNI names (RFC 6066), as undici has it', () => {
    expect(serverNameFor('127.0.0.1')).toBe('');
    expect(serverNameFor('127.0.0.1:8080')).toBe('');
    expect(serverNameFor('[::1]:8080')).toBe('');
    expect(serverNameFor('[::1]')).toBe('');
  });

  it('stays bounded with many distinct hosts', () => {
    for (let i = 0; i < 1000; i++) expect(serverNameFor(`svc-${i}:80`)).toBe(`svc-${i}`);
  });
});
