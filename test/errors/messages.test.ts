import { describe, expect, it } from 'vitest';
import { ERROR_CATEGORIES } from '../../machines/call.types.js';
import { USER_MESSAGES, pickLanguage, userMessage, type Language } from '../../src/errors/messages.js';

describe('pickLanguage', () => {
  const cases: Array<[header: string | undefined | null, expected: Language]> = [
    ['nl', 'nl'],
    ['nl-NL', 'nl'],
    ['NL-be', 'nl'],
    ['nl-BE;q=0.9, en;q=0.8', 'nl'],
    ['en-GB,nl;q=0.5', 'en'],
    ['en', 'en'],
    ['de-DE, nl;q=0.7, en;q=0.3', 'nl'],
    ['fr, de;q=0.9', 'en'],
    ['en;q=0.2, nl;q=0.2', 'en'],
    ['nl;q=0.2, en;q=0.2', 'nl'],
    ['nl;q=0, en;q=0.1', 'en'],
    ['en;q=0, nl;q=0.1', 'nl'],
    ['en;q=0, *', 'nl'],
    ['*, nl', 'nl'],
    ['*', 'en'],
    ['nl;q=0', 'en'],
    ['nl ; q = 0.8 , en ; q = 0.7', 'nl'],
    ['nl;q=2, en;q=0.5', 'en'],
    ['nl;q=abc', 'en'],
    ['%%%garbage;;;', 'en'],
    ['', 'en'],
    ['   ', 'en'],
    [undefined, 'en'],
    [null, 'en'],
  ];

  for (const [header, expected] of cases) {
    it(`picks ${expected} for Accept-Language ${JSON.stringify(header)}`, () => {
      expect(pickLanguage(header)).toBe(expected);
    });
  }

  it('copes with an absurdly long header without hanging', () => {
    const header = `${'xx;q=0.1,'.repeat(50_000)}nl`;
    expect(pickLanguage(header)).toBe('en');
  });
});

describe('user messages', () => {
  for (const category of ERROR_CATEGORIES) {
    it(`has a non-empty English and Dutch message for ${category}, and they differ`, () => {
      const en = userMessage(category, 'en');
      const nl = userMessage(category, 'nl');
      expect(en.trim().length).toBeGreaterThan(0);
      expect(nl.trim().length).toBeGreaterThan(0);
      expect(nl).not.toBe(en);
    });
  }

  it('covers exactly the known categories in both languages', () => {
    for (const language of ['en', 'nl'] as const) {
      expect(Object.keys(USER_MESSAGES[language]).sort()).toEqual([...ERROR_CATEGORIES].sort());
    }
  });

  it('shows no internals to end users: no codes, no provider or protocol names, no snake_case', () => {
    for (const language of ['en', 'nl'] as const) {
      for (const text of Object.values(USER_MESSAGES[language])) {
        expect(text).not.toMatch(/\d/);
        expect(text).not.toMatch(/livekit|sip|twirp|http|trunk|_/i);
        expect(text).toMatch(/^[A-Z].*\.$/);
      }
    }
  });

  it('says busy plainly in both languages', () => {
    expect(userMessage('busy', 'en')).toBe('The number you called is busy. Please try again later.');
    expect(userMessage('busy', 'nl')).toBe('Het gekozen nummer is in gesprek. Probeer het later opnieuw.');
  });

  it('falls back to English and to the unknown message for values it does not know', () => {
    expect(userMessage('busy', 'fr' as Language)).toBe(USER_MESSAGES.en.busy);
    expect(userMessage('nope' as never, 'nl')).toBe(USER_MESSAGES.nl.unknown);
  });

  it('chooses the message language from an Accept-Language header end to end', () => {
    expect(userMessage('no_answer', pickLanguage('nl-BE;q=0.9, en;q=0.8'))).toBe(USER_MESSAGES.nl.no_answer);
  });
});
