/*! netget.js: the netget browser handshaker (protocol netget/1, see PROTOCOL.md). MIT. No dependencies.
 *
 * Classic script (connects on load):
 *   <script src="http://REGISTRY:7700/netget.js" data-network="development"></script>
 *   data-endpoint="URL"   another registry than the one the file came from (http(s):// or ws(s)://)
 *   data-token="..."      a join token (token networks; also passed to the registry's filter)
 *   data-autoconnect="false"   do not connect on load; call netget.connect() yourself
 * ES module: `import 'http://REGISTRY:7700/netget.js'; const { netget } = globalThis;`
 *   The file has no `export`: it always installs globalThis.netget. As a module it connects on load
 *   only when its <script type="module" src> tag carries data-network / data-endpoint; after an
 *   `import` call netget.connect({network}) (the endpoint defaults to the file's own registry).
 *
 * window.netget: ready (Promise of the first welcome; rejects, with .code, if the first attempt
 * fails; the script keeps retrying), connect({endpoint, network, token}), close(), discover(name,
 * {tags, healthyOnly}), services(), watch(name, cb) / watchNetwork(cb) / subscribe(channel, cb)
 * (each returns a function that stops it, whose .ready settles with the first answer),
 * publish(channel, data) (resolves with `delivered`), request(type, fields), on('open'|'close'|
 * 'error', cb) (returns an off function), state, session (the welcome), publicKey.
 * Errors are Error objects with .code (NETGET_*). Reconnects with backoff (250 ms doubling to 10 s,
 * jittered) and restores watches and subscriptions; an in-flight publish is not re-sent. A session
 * that held no watch or subscription is reopened only when the page next calls (state 'idle').
 * Identity: a fresh Ed25519 key per page load, kept in memory only (WebCrypto, non-extractable;
 * where WebCrypto lacks Ed25519, e.g. plain-http pages not on localhost, the bundled @noble/ed25519).
 */
(() => {
  'use strict';
  const G = globalThis;
  if (G.netget && G.netget.protocol) return;
  const PROTO = 'netget/1';
  const TIMEOUT = 30000;
  const doc = G.document;

  // Where this file came from: its <script> element (classic or module), else the call stack.
  let el = doc && doc.currentScript;
  let src = el && el.src;
  if (!src) {
    const m = /((?:https?|file):\/\/[^\s()'"@]+?):\d+:\d+/.exec(new Error().stack || '');
    src = m ? m[1] : '';
    el = src && doc ? [...doc.scripts].find((s) => s.src === src) : null;
  }
  const attrs = (el && el.dataset) || {};

  const fail = (code, message) => Object.assign(new Error(message), { name: 'NetgetError', code });
  const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
  const ignore = () => {};
  const call = (cb, v) => {
    try {
      cb(v);
    } catch (e) {
      setTimeout(() => {
        throw e;
      });
    }
  };
  const deferred = () => {
    const d = {};
    d.promise = new Promise((res, rej) => Object.assign(d, { res, rej }));
    d.promise.catch(ignore);
    return d;
  };

  // ws(s)://host/v1/ws from http(s)://host[/netget.js], ws(s)://host[/v1/ws] or a bare path.
  const wsURL = (endpoint) => {
    const u = new URL(endpoint || src || '/', src || G.location.href);
    u.protocol = u.protocol.replace(/^http/, 'ws');
    if (!/\/v1\/ws$/.test(u.pathname)) u.pathname = u.pathname.replace(/\/?[^/]*\.js$|\/$/, '') + '/v1/ws';
    u.search = u.hash = '';
    return u.href;
  };

  // ---- Ed25519 for browsers whose WebCrypto lacks it (plain-http pages not on localhost have no
  // crypto.subtle): @noble/ed25519 with @noble/hashes' SHA-512, audited, bundled below with their
  // licenses by core/web/vendor.js from the pinned versions (a node test checks it). ----
  const ed = (() => {
/* BEGIN VENDORED by core/web/vendor.js (npm run vendor); do not edit.
 * @noble/ed25519 3.2.0:
 *   The MIT License (MIT)
 *
 *   Copyright (c) 2019 Paul Miller (https://paulmillr.com)
 *
 *   Permission is hereby granted, free of charge, to any person obtaining a copy
 *   of this software and associated documentation files (the “Software”), to deal
 *   in the Software without restriction, including without limitation the rights
 *   to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 *   copies of the Software, and to permit persons to whom the Software is
 *   furnished to do so, subject to the following conditions:
 *
 *   The above copyright notice and this permission notice shall be included in
 *   all copies or substantial portions of the Software.
 *
 *   THE SOFTWARE IS PROVIDED “AS IS”, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 *   IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 *   FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 *   AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 *   LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 *   OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
 *   THE SOFTWARE.
 *
 * @noble/hashes 2.4.0:
 *   The MIT License (MIT)
 *
 *   Copyright (c) 2022 Paul Miller (https://paulmillr.com)
 *
 *   Permission is hereby granted, free of charge, to any person obtaining a copy
 *   of this software and associated documentation files (the “Software”), to deal
 *   in the Software without restriction, including without limitation the rights
 *   to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 *   copies of the Software, and to permit persons to whom the Software is
 *   furnished to do so, subject to the following conditions:
 *
 *   The above copyright notice and this permission notice shall be included in
 *   all copies or substantial portions of the Software.
 *
 *   THE SOFTWARE IS PROVIDED “AS IS”, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 *   IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 *   FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 *   AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 *   LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 *   OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
 *   THE SOFTWARE.
 */
var noble=(()=>{var W=Object.defineProperty;var te=Object.getOwnPropertyDescriptor;var ee=Object.getOwnPropertyNames;var ne=Object.prototype.hasOwnProperty;var oe=(t,e,n)=>e in t?W(t,e,{enumerable:!0,configurable:!0,writable:!0,value:n}):t[e]=n;var re=(t,e)=>{for(var n in e)W(t,n,{get:e[n],enumerable:!0})},se=(t,e,n,o)=>{if(e&&typeof e=="object"||typeof e=="function")for(let r of ee(e))!ne.call(t,r)&&r!==n&&W(t,r,{get:()=>e[r],enumerable:!(o=te(e,r))||o.enumerable});return t};var ce=t=>se(W({},"__esModule",{value:!0}),t);var d=(t,e,n)=>oe(t,typeof e!="symbol"?e+"":e,n);var Te={};re(Te,{getPublicKey:()=>Dt,sign:()=>Gt});var Ht=Object.freeze,$=0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffedn,q=0x1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3edn,v=0x52036cee2b6ffe738cc740797779e89800700a4d4141d8ab75eb4dca135978a3n,rt=0x216936d3cd6e53fec0a4e231fdd6dc5c692cc7609525a7b2c9562d608f25d51an,st=0x6666666666666666666666666666666666666666666666666666666666666658n,I=$-1n,ie=Ht({p:$,n:q,h:8n,a:I,d:v,Gx:rt,Gy:st}),Lt=32,gt=t=>t instanceof Uint8Array||ArrayBuffer.isView(t)&&t.constructor.name==="Uint8Array"&&t.BYTES_PER_ELEMENT===1,X=(t,e,n="")=>{if(gt(t)&&(e===void 0||t.length===e))return t;let o=gt(t),r=e!==void 0?` of length ${e}`:"",s=o?`length=${t.length}`:`type=${typeof t}`,c=(n?`"${n}" `:"")+"expected Uint8Array"+r+", got "+s;throw o?new RangeError(c):new TypeError(c)},it=(t,e="",n)=>Uint8Array.from(X(t,n,e)),Tt=(t,e)=>t.toString(16).padStart(e,"0"),Ut=t=>{let e="";for(let n of X(t))e+=Tt(n,2);return e},St=t=>{let e="hex invalid";if(typeof t!="string")throw new TypeError(e);if(t.length%2||!/^[\da-f]*$/i.test(t))throw new RangeError(e);let n=new Uint8Array(t.length/2);for(let o=0,r=0;o<n.length;o++,r+=2){let s=t.charCodeAt(r),c=t.charCodeAt(r+1);n[o]=((s&15)+(s>>6)*9)*16+(c&15)+(c>>6)*9}return n},z=(...t)=>{let e=0;for(let r of t)e+=X(r).length;let n=new Uint8Array(e),o=0;for(let r of t)n.set(r,o),o+=r.length;return n};var O=(t,e,n,o="bad number: out of range")=>{if(typeof t!="bigint")throw new TypeError(o);if(e<=t&&t<n)return t;throw new RangeError(o)},y=(t,e=$)=>(t%=e)>=0n?t:e+t,mt=(1n<<255n)-1n,i=t=>{if(t<0n)throw new RangeError("negative coordinate");let e=(t>>255n)*19n+(t&mt);return e=(e>>255n)*19n+(e&mt),e%$},_t=t=>y(t,q),fe=(t,e)=>{if(t===0n)throw new Error("invert: expected non-zero number");if(e<=1n)throw new Error("invert: expected modulus > 1, got "+e);let n=y(t,e),o=e,r=0n,s=1n;for(;n!==0n;){let f=o/n,a=o-n*f,h=r-s*f;o=n,n=a,r=s,s=h}if(o!==1n)throw new Error("invert: does not exist");return y(r,e)},ae=t=>{let e=at[t];if(typeof e!="function")throw new Error("hashes."+t+" not set");return e},ft=(t,...e)=>X(ae(t)(z(...e)),64,"digest");var ot=t=>{if(t instanceof G)return t;throw new TypeError("Point expected")},Ct=2n**256n,L=class L{constructor(e,n,o,r){d(this,"X");d(this,"Y");d(this,"Z");d(this,"T");let s=Ct;this.X=O(e,0n,s),this.Y=O(n,0n,s),this.Z=O(o,1n,s),this.T=O(r,0n,s),Ht(this)}static CURVE(){return ie}static fromAffine(e){return new L(e.x,e.y,1n,i(e.x*e.y))}static fromBytes(e,n=!1){let o=it(e,"point",Lt),r=o[31];o[31]=r&-129;let s=Ft(o);n||O(s,0n,$);let c=i(s*s),f=y(c-1n),a=i(v*c+1n),{isValid:h,value:x}=de(f,a);if(!h)throw new Error("bad point: y not sqrt");let u=!!(r&128);if(!n&&x===0n&&u)throw new Error("bad point: x==0, isLastByteOdd");return u!==!!(x&1n)&&(x=y(-x)),new L(x,s,1n,i(x*s))}static fromHex(e,n){return L.fromBytes(St(e),n)}get x(){return this.toAffine().x}get y(){return this.toAffine().y}assertValidity(){let e=I,n=v,o=this;if(o.is0())throw new Error("bad point: ZERO");let{X:r,Y:s,Z:c,T:f}=o,a=i(r*r),h=i(s*s),x=i(c*c),u=i(x*x),b=i(a*e),p=i(x*(b+h)),w=y(u+i(n*i(a*h)));if(p!==w)throw new Error("bad point: equation left != right (1)");let g=i(r*s),m=i(c*f);if(g!==m)throw new Error("bad point: equation left != right (2)");return this}equals(e){let{X:n,Y:o,Z:r}=this,{X:s,Y:c,Z:f}=ot(e);return i(n*f)===i(s*r)&&i(o*f)===i(c*r)}is0(){return this.equals(D)}negate(){return new L(y(-this.X),this.Y,this.Z,y(-this.T))}double(){let{X:e,Y:n,Z:o}=this,r=I,s=i(e*e),c=i(n*n),f=i(2n*o*o),a=i(r*s),h=y(e+n),x=y(i(h*h)-s-c),u=y(a+c),b=y(u-f),p=y(a-c),w=i(x*b),g=i(u*p),m=i(x*p),A=i(b*u);return new L(w,g,A,m)}add(e){let{X:n,Y:o,Z:r,T:s}=this,{X:c,Y:f,Z:a,T:h}=ot(e),x=I,u=v,b=i(n*c),p=i(o*f),w=i(i(s*u)*h),g=i(r*a),m=y(i(y(n+o)*y(c+f))-b-p),A=y(g-w),_=y(g+w),C=y(p-i(x*b)),l=i(m*A),E=i(_*C),B=i(m*C),k=i(A*_);return new L(l,E,k,B)}subtract(e){return this.add(ot(e).negate())}multiply(e,n=!0){if(!n&&e===0n||(O(e,1n,q),!n&&this.is0()))return D;if(e===1n)return this;if(this.equals(Z))return pe(e).p;let o=D,r=Z,s=this;for(let c=0;n?c<256:e>0n;c++)e&1n?o=o.add(s):n&&(r=r.add(s)),s=s.double(),e>>=1n;return o}multiplyUnsafe(e){return this.multiply(e,!1)}toAffine(){let{X:e,Y:n,Z:o}=this;if(this.equals(D))return{x:0n,y:1n};let r=fe(o,$);if(i(o*r)!==1n)throw new Error("invalid inverse");return{x:i(e*r),y:i(n*r)}}toBytes(){let{x:e,y:n}=this.toAffine(),o=Rt(n);return o[31]|=e&1n?128:0,o}toHex(){return Ut(this.toBytes())}clearCofactor(){return this.multiply(8n,!1)}isSmallOrder(){return this.clearCofactor().is0()}isTorsionFree(){return this.multiply(q/2n,!1).double().add(this).is0()}};d(L,"BASE"),d(L,"ZERO");var G=L,Z=new G(rt,st,1n,y(rt*st)),D=new G(0n,1n,1n,0n);G.BASE=Z;G.ZERO=D;var Rt=t=>St(Tt(O(t,0n,Ct),64)).reverse(),Ft=t=>BigInt("0x"+Ut(Uint8Array.from(X(t)).reverse())),H=(t,e)=>{let n=t;for(;e-- >0;)n=i(n*n);return n},he=t=>{let e=i(t*t),n=i(e*t),o=i(H(n,2)*n),r=i(H(o,1)*t),s=i(H(r,5)*r),c=i(H(s,10)*s),f=i(H(c,20)*c),a=i(H(f,40)*f),h=i(H(a,80)*a),x=i(H(h,80)*a),u=i(H(x,10)*s);return i(H(u,2)*t)},At=0x2b8324804fc1df0b2b4d00993dfbd7a72f431806ad2fe478c4ee1b274a0ea0b0n,de=(t,e)=>{let n=i(e*i(e*e)),o=i(i(n*n)*e),r=he(i(t*o)),s=i(t*i(n*r)),c=i(e*i(s*s)),f=s,a=i(s*At),h=c===t,x=c===y(-t),u=c===y(-t*At);return h&&(s=f),(x||u)&&(s=a),(y(s)&1n)===1n&&(s=y(-s)),{isValid:h||x,value:s}},ct=t=>_t(Ft(t)),xe=t=>{let e=it(t),n=e.slice(0,32);n[0]&=248,n[31]&=127,n[31]|=64;let o=e.slice(32),r=ct(n),s=Z.multiply(r),c=s.toBytes();return{head:n,prefix:o,scalar:r,point:s,pointBytes:c}};var Ot=t=>xe(ft("sha512",X(t,Lt,"secretKey")));var Dt=t=>Ot(t).pointBytes;var ue=t=>t[1](ft("sha512",t[0])),le=(t,e,n)=>{let{pointBytes:o,scalar:r}=t,s=ct(e),c=Z.multiply(s).toBytes();return[z(c,o,n),h=>{let x=_t(s+ct(h)*r);return X(z(c,Rt(x)),64)}]};var Gt=(t,e)=>{let n=it(t,"message"),o=Ot(e);return ue(le(o,ft("sha512",o.prefix,n),n))};var at={sha512Async:async t=>{let e=globalThis?.crypto?.subtle;if(!e)throw new Error("crypto.subtle must be defined, consider polyfill");return new Uint8Array(await e.digest("SHA-512",z(t)))},sha512:void 0};var be=()=>{let t=[],e=Z,n;for(let o=0;o<33;o++){n=e,t.push(n);for(let r=1;r<128;r++)n=n.add(e),t.push(n);e=n.double()}return t},Et,Bt=(t,e)=>{let n=e.negate();return t?n:e},pe=t=>{let e=Et||(Et=be()),n=D,o=Z;for(let r=0;r<33;r++){let s=Number(t&255n);t>>=8n,s>128&&(s-=256,t+=1n);let c=r*128,f=c+Math.abs(s)-1,a=r%2!==0,h=s<0;s===0?o=o.add(Bt(a,e[c])):n=n.add(Bt(h,e[f]))}if(t!==0n)throw new Error("invalid wnaf");return{p:n,f:o}};var V=BigInt(4294967295),Zt=BigInt(32);function ye(t,e=!1){return e?{h:Number(t&V),l:Number(t>>Zt&V)}:{h:Number(t>>Zt&V)|0,l:Number(t&V)|0}}function Xt(t,e=!1){let n=t.length,o=new Uint32Array(n),r=new Uint32Array(n);for(let s=0;s<n;s++){let{h:c,l:f}=ye(t[s],e);[o[s],r[s]]=[c,f]}return[o,r]}var we=t=>t/2**32|0,ge=t=>t>>>0;function Yt(t,e,n,o){let r=we(n),s=ge(n);t.setUint32(e,o?s:r,o),t.setUint32(e+4,o?r:s,o)}var ht=(t,e,n)=>t>>>n,dt=(t,e,n)=>t<<32-n|e>>>n,Y=(t,e,n)=>t>>>n|e<<32-n,j=(t,e,n)=>t<<32-n|e>>>n,M=(t,e,n)=>t<<64-n|e>>>n-32,N=(t,e,n)=>t>>>n-32|e<<64-n;function T(t,e,n,o){let r=(e>>>0)+(o>>>0);return{h:t+n+(r/2**32|0)|0,l:r|0}}var jt=(t,e,n)=>(t>>>0)+(e>>>0)+(n>>>0),$t=(t,e,n,o)=>e+n+o+(t/2**32|0)|0,kt=(t,e,n,o)=>(t>>>0)+(e>>>0)+(n>>>0)+(o>>>0),Mt=(t,e,n,o,r)=>e+n+o+r+(t/2**32|0)|0,Nt=(t,e,n,o,r)=>(t>>>0)+(e>>>0)+(n>>>0)+(o>>>0)+(r>>>0),Kt=(t,e,n,o,r,s)=>e+n+o+r+s+(t/2**32|0)|0;function Pt(t){return t instanceof Uint8Array||ArrayBuffer.isView(t)&&t.constructor.name==="Uint8Array"&&"BYTES_PER_ELEMENT"in t&&t.BYTES_PER_ELEMENT===1}var xt=t=>t?`"${t}" `:"";function Ae(t,e=""){if(typeof t!="number")throw new TypeError(xt(e)+"expected number, got "+typeof t);if(!Number.isSafeInteger(t)||t<0)throw new RangeError(xt(e)+"expected integer >= 0, got "+t);return t}function ut(t,e,n=""){if(Pt(t)&&(e===void 0||t.length===e))return t;e!==void 0&&Ae(e,"length");let o=Pt(t),r=e!==void 0?` of length ${e}`:"",s=o?`length=${t.length}`:`type=${typeof t}`,c=xt(n)+"expected Uint8Array"+r+", got "+s;throw o?new RangeError(c):new TypeError(c)}var Ee=(t,e)=>{if(t===null||typeof t!="object"||Array.isArray(t))throw new TypeError((e==="object"?"":`"${e}" `)+"expected object, got type="+typeof t)},Wt=(t,e)=>{Ee(t,e);let n=Object.getPrototypeOf(t);if(n!==Object.prototype&&n!==null)throw new TypeError(`"${e}" expected plain object`);if(Object.hasOwn(t,"__proto__"))throw new TypeError(`"${e}.__proto__" is not allowed`)};function lt(t,e=!0){if(t.destroyed)throw new Error("hash was destroyed");if(e&&t.finished)throw new Error("digest() was already called")}function vt(t,e){ut(t,void 0,"output");let n=e.outputLen;if(!(t.length>=n))throw new RangeError('"output" expected length >= '+n)}function bt(...t){for(let e=0;e<t.length;e++)t[e].fill(0)}function J(t){return new DataView(t.buffer,t.byteOffset,t.byteLength)}function Be(t,e,n="opts"){return Wt(t,"defaults"),e!==void 0&&Wt(e,n),Object.assign(Object.create(null),t,e)}function It(t,e={}){if(typeof t!="function")throw new TypeError('"hashCons" expected function, got type='+typeof t);e=Be({},e,"info");let n=(r,s)=>t(s).update(r).digest(),o=t(void 0);return n.outputLen=o.outputLen,n.blockLen=o.blockLen,n.canXOF=o.canXOF,n.create=r=>t(r),Object.assign(n,e),Object.freeze(n)}var qt=t=>({oid:Uint8Array.from([6,9,96,134,72,1,101,3,4,2,t])});var Q=class{constructor(e,n,o,r){d(this,"blockLen");d(this,"outputLen");d(this,"canXOF",!1);d(this,"padOffset");d(this,"isLE");d(this,"buffer");d(this,"view");d(this,"finished",!1);d(this,"length",0);d(this,"pos",0);d(this,"destroyed",!1);this.blockLen=e,this.outputLen=n,this.padOffset=o,this.isLE=r,this.buffer=new Uint8Array(e),this.view=J(this.buffer)}update(e){lt(this),ut(e);let{view:n,buffer:o,blockLen:r}=this,s=e.length,c=!1;for(let f=0;f<s;){let a=Math.min(r-this.pos,s-f);if(a===r){let h=J(e);for(;r<=s-f;f+=r)this.process(h,f);c=!0;continue}o.set(f===0&&a===s?e:e.subarray(f,f+a),this.pos),this.pos+=a,f+=a,this.pos===r&&(this.process(n,0),this.pos=0,c=!0)}return this.length+=e.length,c&&this.roundClean(),this}digestInto(e){lt(this),vt(e,this),this.finished=!0;let{buffer:n,view:o,blockLen:r,isLE:s}=this,{pos:c}=this;n[c++]=128,n.fill(0,c),this.padOffset>r-c&&(this.process(o,0),n.fill(0)),Yt(o,r-8,this.length*8,s),this.process(o,0),this.roundClean();let f=e===n?o:J(e),a=this.outputLen,h=a/4,x=this.get();if(a%4||h>x.length)throw new Error("invalid outputLen");for(let u=0;u<h;u++)f.setUint32(4*u,x[u],s)}digest(){let{buffer:e,outputLen:n}=this;this.digestInto(e);let o=e.slice(0,n);return this.destroy(),o}_cloneIntoMeta(e){let{buffer:n,length:o,finished:r,destroyed:s,pos:c}=this;return e.destroyed=s,e.finished=r,e.length=o,e.pos=c,c&&e.buffer.set(n),e}clone(){return this._cloneInto()}};var zt=Uint32Array.from([1779033703,4089235720,3144134277,2227873595,1013904242,4271175723,2773480762,1595750129,1359893119,2917565137,2600822924,725511199,528734635,4215389547,1541459225,327033209]);var Vt=Xt(["0x428a2f98d728ae22","0x7137449123ef65cd","0xb5c0fbcfec4d3b2f","0xe9b5dba58189dbbc","0x3956c25bf348b538","0x59f111f1b605d019","0x923f82a4af194f9b","0xab1c5ed5da6d8118","0xd807aa98a3030242","0x12835b0145706fbe","0x243185be4ee4b28c","0x550c7dc3d5ffb4e2","0x72be5d74f27b896f","0x80deb1fe3b1696b1","0x9bdc06a725c71235","0xc19bf174cf692694","0xe49b69c19ef14ad2","0xefbe4786384f25e3","0x0fc19dc68b8cd5b5","0x240ca1cc77ac9c65","0x2de92c6f592b0275","0x4a7484aa6ea6e483","0x5cb0a9dcbd41fbd4","0x76f988da831153b5","0x983e5152ee66dfab","0xa831c66d2db43210","0xb00327c898fb213f","0xbf597fc7beef0ee4","0xc6e00bf33da88fc2","0xd5a79147930aa725","0x06ca6351e003826f","0x142929670a0e6e70","0x27b70a8546d22ffc","0x2e1b21385c26c926","0x4d2c6dfc5ac42aed","0x53380d139d95b3df","0x650a73548baf63de","0x766a0abb3c77b2a8","0x81c2c92e47edaee6","0x92722c851482353b","0xa2bfe8a14cf10364","0xa81a664bbc423001","0xc24b8b70d0f89791","0xc76c51a30654be30","0xd192e819d6ef5218","0xd69906245565a910","0xf40e35855771202a","0x106aa07032bbd1b8","0x19a4c116b8d2d0c8","0x1e376c085141ab53","0x2748774cdf8eeb99","0x34b0bcb5e19b48a8","0x391c0cb3c5c95a63","0x4ed8aa4ae3418acb","0x5b9cca4f7763e373","0x682e6ff3d6b2b8a3","0x748f82ee5defb2fc","0x78a5636f43172f60","0x84c87814a1f0ab72","0x8cc702081a6439ec","0x90befffa23631e28","0xa4506cebde82bde9","0xbef9a3f7b2c67915","0xc67178f2e372532b","0xca273eceea26619c","0xd186b8c721c0c207","0xeada7dd6cde0eb1e","0xf57d4f7fee6ed178","0x06f067aa72176fba","0x0a637dc5a2c898a6","0x113f9804bef90dae","0x1b710b35131c471b","0x28db77f523047d84","0x32caab7b40c72493","0x3c9ebe0a15c9bebc","0x431d67c49c100d4c","0x4cc5d4becb3e42b6","0x597f299cfc657e2a","0x5fcb6fab3ad6faec","0x6c44198c4a475817"].map(t=>BigInt(t))),He=Vt[0],Le=Vt[1],R=new Uint32Array(80),F=new Uint32Array(80),pt=class extends Q{constructor(n,o){super(128,n,16,!1);d(this,"Ah",0);d(this,"Al",0);d(this,"Bh",0);d(this,"Bl",0);d(this,"Ch",0);d(this,"Cl",0);d(this,"Dh",0);d(this,"Dl",0);d(this,"Eh",0);d(this,"El",0);d(this,"Fh",0);d(this,"Fl",0);d(this,"Gh",0);d(this,"Gl",0);d(this,"Hh",0);d(this,"Hl",0);this.Ah=o[0]|0,this.Al=o[1]|0,this.Bh=o[2]|0,this.Bl=o[3]|0,this.Ch=o[4]|0,this.Cl=o[5]|0,this.Dh=o[6]|0,this.Dl=o[7]|0,this.Eh=o[8]|0,this.El=o[9]|0,this.Fh=o[10]|0,this.Fl=o[11]|0,this.Gh=o[12]|0,this.Gl=o[13]|0,this.Hh=o[14]|0,this.Hl=o[15]|0}get(){let{Ah:n,Al:o,Bh:r,Bl:s,Ch:c,Cl:f,Dh:a,Dl:h,Eh:x,El:u,Fh:b,Fl:p,Gh:w,Gl:g,Hh:m,Hl:A}=this;return[n,o,r,s,c,f,a,h,x,u,b,p,w,g,m,A]}set(n,o,r,s,c,f,a,h,x,u,b,p,w,g,m,A){this.Ah=n|0,this.Al=o|0,this.Bh=r|0,this.Bl=s|0,this.Ch=c|0,this.Cl=f|0,this.Dh=a|0,this.Dl=h|0,this.Eh=x|0,this.El=u|0,this.Fh=b|0,this.Fl=p|0,this.Gh=w|0,this.Gl=g|0,this.Hh=m|0,this.Hl=A|0}_cloneInto(n){return(n||(n=new this.constructor)).set(...this.get()),this._cloneIntoMeta(n)}process(n,o){for(let l=0;l<16;l++,o+=4)R[l]=n.getUint32(o),F[l]=n.getUint32(o+=4);for(let l=16;l<80;l++){let E=R[l-15]|0,B=F[l-15]|0,k=Y(E,B,1)^Y(E,B,8)^ht(E,B,7),tt=j(E,B,1)^j(E,B,8)^dt(E,B,7),U=R[l-2]|0,S=F[l-2]|0,K=Y(U,S,19)^M(U,S,61)^ht(U,S,6),et=j(U,S,19)^N(U,S,61)^dt(U,S,6),P=kt(tt,et,F[l-7],F[l-16]),nt=Mt(P,k,K,R[l-7],R[l-16]);R[l]=nt|0,F[l]=P|0}let{Ah:r,Al:s,Bh:c,Bl:f,Ch:a,Cl:h,Dh:x,Dl:u,Eh:b,El:p,Fh:w,Fl:g,Gh:m,Gl:A,Hh:_,Hl:C}=this;for(let l=0;l<80;l++){let E=Y(b,p,14)^Y(b,p,18)^M(b,p,41),B=j(b,p,14)^j(b,p,18)^N(b,p,41),k=b&w^~b&m,tt=p&g^~p&A,U=Nt(C,B,tt,Le[l],F[l]),S=Kt(U,_,E,k,He[l],R[l]),K=U|0,et=Y(r,s,28)^M(r,s,34)^M(r,s,39),P=j(r,s,28)^N(r,s,34)^N(r,s,39),nt=r&c^r&a^c&a,Qt=s&f^s&h^f&h;_=m|0,C=A|0,m=w|0,A=g|0,w=b|0,g=p|0,{h:b,l:p}=T(x|0,u|0,S|0,K|0),x=a|0,u=h|0,a=c|0,h=f|0,c=r|0,f=s|0;let wt=jt(K,P,Qt);r=$t(wt,S,et,nt),s=wt|0}({h:r,l:s}=T(this.Ah|0,this.Al|0,r|0,s|0)),{h:c,l:f}=T(this.Bh|0,this.Bl|0,c|0,f|0),{h:a,l:h}=T(this.Ch|0,this.Cl|0,a|0,h|0),{h:x,l:u}=T(this.Dh|0,this.Dl|0,x|0,u|0),{h:b,l:p}=T(this.Eh|0,this.El|0,b|0,p|0),{h:w,l:g}=T(this.Fh|0,this.Fl|0,w|0,g|0),{h:m,l:A}=T(this.Gh|0,this.Gl|0,m|0,A|0),{h:_,l:C}=T(this.Hh|0,this.Hl|0,_|0,C|0),this.set(r,s,c,f,a,h,x,u,b,p,w,g,m,A,_,C)}roundClean(){bt(R,F)}destroy(){this.destroyed=!0,bt(this.buffer),this.set(0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0)}},yt=class extends pt{constructor(){super(64,zt)}};var Jt=It(()=>new yt,qt(3));at.sha512=Jt;return ce(Te);})();
/* END VENDORED */
    return noble;
  })();

  let keyP = null;
  const keys = () =>
    (keyP ||= (async () => {
      try {
        const k = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
        const pub = b64(await crypto.subtle.exportKey('raw', k.publicKey));
        return { pub, kind: 'webcrypto', sign: async (d) => b64(await crypto.subtle.sign('Ed25519', k.privateKey, d)) };
      } catch (e) {
        const seed = crypto.getRandomValues(new Uint8Array(32));
        return { pub: b64(ed.getPublicKey(seed)), kind: 'js', sign: async (d) => b64(ed.sign(d, seed)) };
      }
    })());

  // ---- Connection state ----
  let opts = null; // {url, endpoint, network, token}
  let ws = null; // the socket of the current attempt or session
  let session = null; // the welcome, while in session
  let state = 'closed'; // closed | connecting | open | waiting (to retry) | idle | stopped
  let attempt = 0;
  let retryTimer = 0;
  let lastHeard = 0;
  let hadSession = false;
  let nextId = 1;
  let waiters = [];
  const ready = deferred();
  waiters.push(ready);
  const pending = new Map(); // id -> request
  let queue = []; // requests waiting for a session
  const watches = new Map(); // service -> {cbs, view, ready}
  const subs = new Map(); // channel -> {cbs, ready}
  let net = null; // {cbs, view, ready}
  const listeners = { open: new Set(), close: new Set(), error: new Set() };
  const emit = (type, v) => listeners[type].forEach((cb) => call(cb, v));

  const setWaiters = (ok, v) => {
    const w = waiters;
    waiters = [];
    w.forEach((d) => (ok ? d.res(v) : d.rej(v)));
  };

  function open() {
    clearTimeout(retryTimer);
    const o = opts;
    let sock;
    let error = null;
    state = 'connecting';
    try {
      sock = ws = new WebSocket(o.url);
    } catch (e) {
      state = 'stopped';
      return lost(ws, 0, '', fail('NETGET_INVALID_INPUT', `bad endpoint ${o.url}: ${e.message}`));
    }
    const guard = setTimeout(() => lost(sock, 4000, 'timeout', fail('NETGET_TIMEOUT', `no welcome from ${o.url} in 15 s`)), 15000);
    sock.onmessage = async (ev) => {
      if (sock !== ws) return;
      lastHeard = Date.now();
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (session) return dispatch(m);
      if (m.type === 'challenge') {
        if (m.protocol !== PROTO) {
          return lost(sock, 1000, '', fail('NETGET_UNSUPPORTED_VERSION', `the registry speaks ${m.protocol}, not ${PROTO}`));
        }
        const k = await keys();
        api.publicKey = k.pub;
        const bytes = new TextEncoder().encode(`${PROTO}\nhello\n${m.registryId}\n${o.network}\n${m.nonce}`);
        const hello = { type: 'hello', protocol: PROTO, network: o.network, publicKey: k.pub, nonce: m.nonce, signature: await k.sign(bytes), nodeType: 'client' };
        if (o.token) hello.token = o.token;
        if (sock === ws) sock.send(JSON.stringify(hello));
      } else if (m.type === 'welcome') {
        clearTimeout(guard);
        welcome(m);
      } else if (m.type === 'error' && m.error) {
        error = fail(m.error.code, m.error.message);
      }
    };
    sock.onclose = (ev) => {
      clearTimeout(guard);
      lost(sock, ev.code, ev.reason, error);
    };
  }

  function welcome(m) {
    session = m;
    hadSession = true;
    state = 'open';
    attempt = 0;
    setWaiters(true, m);
    emit('open', m);
    // Restore what this page watches and subscribes to, then send what waited for a session.
    for (const [name, w] of watches) startWatch(name, w);
    for (const [channel, s] of subs) startSub(channel, s);
    if (net) startNet(net);
    const q = queue;
    queue = [];
    q.forEach(send);
  }

  // The end of an attempt or a session, whether the socket closed or we gave up on it.
  function lost(sock, code, reason, error, replaced) {
    if (sock !== ws) return;
    ws = null;
    clearTimeout(retryTimer);
    if (sock && sock.readyState < 2) sock.close(1000);
    const was = session;
    session = null;
    for (const p of pending.values()) {
      if (p.retry) queue.push(p);
      else p.rej(fail('NETGET_CLOSED', `the connection closed before ${p.msg.type} was answered`));
    }
    pending.clear();
    if (!was && !replaced) {
      error ||= fail('NETGET_UNREACHABLE', `could not open a session with ${opts.url} (registry down, or this page's origin refused)`);
      setWaiters(false, error);
      emit('error', error);
    }
    if (replaced || state === 'stopped') {
      // nothing to schedule
    } else if (hadSession && !watches.size && !subs.size && !net && !queue.length) {
      // Once a session was had, one that would hold nothing (e.g. closed as idle, 4001) is
      // reopened only when the page needs it.
      state = 'idle';
    } else {
      const delay = Math.min(10000, 250 * 2 ** attempt++) * (0.5 + Math.random() / 2);
      state = 'waiting';
      retryTimer = setTimeout(open, delay);
    }
    if (was) emit('close', { code, reason, retrying: state === 'waiting' });
  }

  // Browsers cannot see the registry's WebSocket pings: while something is watched, an
  // application ping after 15 s of silence checks the connection (and a dead one is dropped).
  setInterval(() => {
    if (!session || Date.now() - lastHeard < 15000 || !(watches.size || subs.size || net)) return;
    const sock = ws;
    lastHeard = Date.now();
    request('ping', {}, { retry: false, timeout: 5000 }).catch((e) => e.code === 'NETGET_TIMEOUT' && lost(sock, 4000, 'silent', null));
  }, 5000);

  function ensure() {
    if (opts && (state === 'idle' || state === 'closed')) open();
  }

  // ---- Requests ----
  function request(type, fields = {}, { retry = true, timeout = TIMEOUT } = {}) {
    return new Promise((res, rej) => {
      if (state === 'stopped') return rej(fail('NETGET_CLOSED', 'netget.close() was called; call netget.connect() again'));
      const p = { msg: { type, ...fields }, retry, res, rej };
      p.timer = setTimeout(() => {
        pending.delete(p.id);
        queue = queue.filter((q) => q !== p);
        p.rej(fail('NETGET_TIMEOUT', `${type} got no answer in ${timeout / 1000} s`));
      }, timeout);
      const done = (f) => (v) => {
        clearTimeout(p.timer);
        f(v);
      };
      p.res = done(res);
      p.rej = done(rej);
      if (session) send(p);
      else {
        queue.push(p);
        ensure();
      }
    });
  }

  function send(p) {
    p.id = p.msg.id = nextId++;
    pending.set(p.id, p);
    ws.send(JSON.stringify(p.msg));
  }

  function dispatch(m) {
    if (m.type === 'result' || m.type === 'pong' || m.type === 'error') {
      const p = m.id != null && pending.get(m.id);
      const e = m.error && fail(m.error.code, m.error.message);
      if (!p) return e && emit('error', e);
      pending.delete(m.id);
      return e ? p.rej(e) : p.res(m.data || {});
    }
    if (m.type === 'event') {
      const w = watches.get(m.name);
      const { type, instance } = m.event;
      if (w && w.view) apply(w.view, w.cbs, type, instance.id, instance, {});
      if (net && net.view) apply(net.view, net.cbs, type, `${m.name}\n${instance.id}`, instance, { name: m.name });
    } else if (m.type === 'snapshot') {
      const w = watches.get(m.name);
      if (w && w.view) resetWatch(w, m.instances);
    } else if (m.type === 'networkSnapshot') {
      if (net && net.view) resetNet(m.instances);
    } else if (m.type === 'message') {
      const s = subs.get(m.channel);
      if (s) s.cbs.forEach((cb) => call(cb, { channel: m.channel, data: m.data, from: m.from }));
    }
  }

  // Events are applied as "insert or replace by id" / "remove if present", so repeats (after a
  // snapshot, or from a service watch and a network watch at once) reach callbacks once.
  function apply(view, cbs, type, key, instance, extra) {
    const old = view.get(key);
    if (type === 'down') {
      if (!old) return;
      view.delete(key);
    } else {
      if (old && JSON.stringify(old) === JSON.stringify(instance)) return;
      view.set(key, instance);
      if (type === 'up' && old) type = 'changed';
      if (type === 'changed' && !old) type = 'up';
    }
    cbs.forEach((cb) => call(cb, { type, ...extra, instance }));
  }

  function resetWatch(w, list) {
    const old = w.view || new Map();
    w.view = new Map();
    for (const i of list) {
      if (old.has(i.id)) w.view.set(i.id, old.get(i.id));
      apply(w.view, w.cbs, 'up', i.id, i, {});
      old.delete(i.id);
    }
    for (const i of old.values()) w.cbs.forEach((cb) => call(cb, { type: 'down', instance: i }));
  }
  const keyOf = (i) => `${i.name}\n${i.id}`;
  function resetNet(list) {
    net.view = new Map(list.map((i) => [keyOf(i), i]));
    net.cbs.forEach((cb) => call(cb, { type: 'snapshot', instances: list }));
  }

  // A failed (re)start: a refusal is final for that watch; a lost connection retries by itself.
  const retriable = (e) => e.code === 'NETGET_CLOSED' || e.code === 'NETGET_TIMEOUT';
  function refused(e, d, drop) {
    if (retriable(e)) return;
    drop();
    d.rej(e);
    emit('error', e);
  }

  function startWatch(name, w) {
    request('watch', { name }, { retry: false }).then(
      (d) => {
        if (watches.get(name) !== w) return;
        if (!w.view) w.view = new Map();
        resetWatch(w, d.instances);
        w.ready.res([...w.view.values()]);
      },
      (e) => refused(e, w.ready, () => watches.get(name) === w && watches.delete(name)),
    );
  }
  function startSub(channel, s) {
    request('subscribe', { channel }, { retry: false }).then(
      () => s.ready.res(),
      (e) => refused(e, s.ready, () => subs.get(channel) === s && subs.delete(channel)),
    );
  }
  function startNet(n) {
    request('watchNetwork', {}, { retry: false }).then(
      (d) => {
        if (net !== n) return;
        resetNet(d.instances);
        n.ready.res(d.instances);
      },
      (e) => refused(e, n.ready, () => net === n && (net = null)),
    );
  }

  // One registry subscription per name, shared by every callback of the page.
  function share(map, key, cb, start, stop, greet) {
    let entry = map.get(key);
    if (entry) {
      if (greet) Promise.resolve().then(() => entry.cbs.has(cb) && greet(entry, cb));
    } else {
      entry = { cbs: new Set(), view: null, ready: deferred() };
      map.set(key, entry);
      if (session) start(key, entry);
      else ensure();
    }
    entry.cbs.add(cb);
    const off = () => {
      if (entry.cbs.delete(cb) && !entry.cbs.size && map.get(key) === entry) {
        map.delete(key);
        if (session) stop(key).catch(ignore);
      }
    };
    off.ready = entry.ready.promise;
    return off;
  }

  const netMap = {
    get: () => net,
    set: (_, v) => (net = v),
    delete: () => (net = null),
  };

  const api = {
    protocol: PROTO,
    ready: ready.promise,
    publicKey: null,
    get state() {
      return state;
    },
    get session() {
      return session;
    },
    get endpoint() {
      return opts && opts.url;
    },
    connect(o = {}) {
      const prev = opts || {};
      opts = {
        endpoint: o.endpoint || prev.endpoint || attrs.endpoint,
        network: o.network || prev.network || attrs.network || 'development',
        token: o.token !== undefined ? o.token : prev.token !== undefined ? prev.token : attrs.token,
      };
      opts.url = wsURL(opts.endpoint);
      attempt = 0;
      state = 'closed';
      if (ws) lost(ws, 1000, 'reconnecting', null, true);
      const d = deferred();
      waiters.push(d);
      open();
      return d.promise;
    },
    close() {
      state = 'stopped';
      clearTimeout(retryTimer);
      if (ws) lost(ws, 1000, 'closed', fail('NETGET_CLOSED', 'netget.close() was called'));
      queue.forEach((p) => p.rej(fail('NETGET_CLOSED', 'netget.close() was called')));
      queue = [];
    },
    request: (type, fields) => request(type, fields, { retry: false }),
    ping: () => request('ping'),
    discover: (name, o = {}) =>
      request('discover', { name, healthyOnly: o.healthyOnly !== false, tags: o.tags || [] }).then((d) => d.instances),
    services: () => request('services').then((d) => d.services),
    publish: (channel, data) =>
      request('publish', { channel, data: data === undefined ? null : data }, { retry: false }).then((d) => d.delivered),
    watch: (name, cb) =>
      share(watches, name, cb, startWatch, (n) => request('unwatch', { name: n }, { retry: false }), (w, c) =>
        w.view && w.view.forEach((instance) => call(c, { type: 'up', instance })),
      ),
    watchNetwork: (cb) =>
      share(netMap, 0, cb, (_, n) => startNet(n), () => request('unwatchNetwork', {}, { retry: false }), (n, c) =>
        n.view && call(c, { type: 'snapshot', instances: [...n.view.values()] }),
      ),
    subscribe: (channel, cb) =>
      share(subs, channel, cb, startSub, (c) => request('unsubscribe', { channel: c }, { retry: false })),
    on(type, cb) {
      listeners[type].add(cb);
      return () => listeners[type].delete(cb);
    },
  };
  G.netget = api;
  if (el && attrs.autoconnect !== 'false' && (el === (doc && doc.currentScript) || attrs.network || attrs.endpoint)) api.connect();
})();
