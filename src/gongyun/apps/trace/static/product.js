window.Gongyun.pages['app:trace/product'] = async () => {};
